//! DeleteAcls (v1–3): removes the ACL bindings each filter matches, durably, in one write
//! per request, and answers each filter with the bindings it removed. Needs ALTER on the
//! cluster. A filter with an UNKNOWN part gets INVALID_REQUEST and removes nothing.

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use weir_core::acl::{AclFilter, Operation};

use super::Context;
use crate::acls;
use crate::errors;

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let failed = |code: i16, message: Option<String>| {
        DeleteAclsFilterResult::default()
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string))
    };
    if !context.cluster_allowed(Operation::Alter) {
        let denied = request
            .filters
            .iter()
            .map(|_| failed(errors::CLUSTER_AUTHORIZATION_FAILED, None))
            .collect();
        return DeleteAclsResponse::default().with_filter_results(denied);
    }
    let parsed: Vec<Result<AclFilter, String>> = request
        .filters
        .iter()
        .map(|f| {
            acls::filter(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let mut deleted = match context.broker.delete_acls(&valid) {
        Ok(deleted) => deleted.into_iter(),
        Err(error) => {
            tracing::error!(%error, "could not write the ACLs");
            let results = parsed
                .iter()
                .map(|p| match p {
                    Ok(_) => failed(errors::UNKNOWN_SERVER_ERROR, Some(error.to_string())),
                    Err(reason) => failed(errors::INVALID_REQUEST, Some(reason.clone())),
                })
                .collect();
            return DeleteAclsResponse::default().with_filter_results(results);
        }
    };
    let results = parsed
        .into_iter()
        .map(|p| match p {
            Err(reason) => failed(errors::INVALID_REQUEST, Some(reason)),
            Ok(_) => {
                let matching = deleted
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(acls::resource_type_code(b.pattern.resource_type))
                            .with_resource_name(StrBytes::from_string(b.pattern.name))
                            .with_pattern_type(acls::pattern_type_code(b.pattern.pattern_type))
                            .with_principal(StrBytes::from_string(b.principal))
                            .with_host(StrBytes::from_string(b.host))
                            .with_operation(acls::operation_code(b.operation))
                            .with_permission_type(acls::permission_code(b.permission))
                    })
                    .collect();
                failed(errors::NONE, None).with_matching_acls(matching)
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
    use kafka_protocol::messages::{ApiKey, CreateAclsRequest};

    use super::super::create_acls::{self, tests::creation};
    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::*;

    fn by_principal(principal: &'static str, op: i8) -> DeleteAclsFilter {
        DeleteAclsFilter::default()
            .with_resource_type_filter(acls::ANY)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(acls::ANY)
            .with_principal_filter(Some(StrBytes::from_static_str(principal)))
            .with_host_filter(Some(StrBytes::from_static_str("*")))
            .with_operation(op)
            .with_permission_type(acls::ANY)
    }

    #[test]
    fn deletes_what_each_filter_matches_at_every_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        for version in versions(ApiKey::DeleteAcls) {
            let created = create_acls::handle(
                &context,
                &header(3),
                CreateAclsRequest::default().with_creations(vec![
                    creation("t", "User:a", 3, 3),
                    creation("u", "User:a", 4, 3),
                    creation("t", "User:b", 3, 3),
                ]),
            );
            assert!(created.results.iter().all(|r| r.error_code == 0));
            let response = handle(
                &context,
                &header(version),
                DeleteAclsRequest::default().with_filters(vec![
                    by_principal("User:a", 3),
                    by_principal("User:a", acls::ANY),
                    by_principal("User:a", 0), // UNKNOWN operation
                    by_principal("User:nobody", acls::ANY),
                ]),
            );
            assert_encodes(&response, version);
            let shape: Vec<(i16, usize)> = response
                .filter_results
                .iter()
                .map(|r| (r.error_code, r.matching_acls.len()))
                .collect();
            assert_eq!(
                shape,
                [(0, 1), (0, 2), (errors::INVALID_REQUEST, 0), (0, 0)]
            );
            let left = context
                .broker
                .describe_acls(&acls::filter(1, None, 1, None, None, 1, 1).expect("filter"));
            assert_eq!(left.len(), 1, "version {version}");
            assert_eq!(left[0].principal, "User:b");
            // Clean up for the next version.
            let all = handle(
                &context,
                &header(version),
                DeleteAclsRequest::default().with_filters(vec![by_principal("User:b", acls::ANY)]),
            );
            assert_eq!(all.filter_results[0].matching_acls.len(), 1);
        }
    }
}
