//! DescribeAcls (v1–3): the ACL bindings one filter matches, grouped by resource pattern.
//! Needs DESCRIBE on the cluster. A filter with an UNKNOWN part gets INVALID_REQUEST.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use weir_core::acl::Operation;

use super::Context;
use crate::acls;
use crate::errors;

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let failed = |code: i16, message: Option<String>| {
        DescribeAclsResponse::default()
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string))
    };
    if !context.cluster_allowed(Operation::Describe) {
        return failed(errors::CLUSTER_AUTHORIZATION_FAILED, None);
    }
    let filter = match acls::filter(
        request.resource_type_filter,
        request.resource_name_filter.as_deref(),
        request.pattern_type_filter,
        request.principal_filter.as_deref(),
        request.host_filter.as_deref(),
        request.operation,
        request.permission_type,
    ) {
        Ok(filter) => filter,
        Err(reason) => return failed(errors::INVALID_REQUEST, Some(reason)),
    };
    let mut by_pattern: BTreeMap<_, Vec<AclDescription>> = BTreeMap::new();
    for binding in context.broker.describe_acls(&filter) {
        by_pattern.entry(binding.pattern.clone()).or_default().push(
            AclDescription::default()
                .with_principal(StrBytes::from_string(binding.principal))
                .with_host(StrBytes::from_string(binding.host))
                .with_operation(acls::operation_code(binding.operation))
                .with_permission_type(acls::permission_code(binding.permission)),
        );
    }
    let resources = by_pattern
        .into_iter()
        .map(|(pattern, descriptions)| {
            DescribeAclsResource::default()
                .with_resource_type(acls::resource_type_code(pattern.resource_type))
                .with_resource_name(StrBytes::from_string(pattern.name))
                .with_pattern_type(acls::pattern_type_code(pattern.pattern_type))
                .with_acls(descriptions)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::{ApiKey, CreateAclsRequest};

    use super::super::create_acls::{self, tests::creation};
    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::*;

    fn filter(
        name: Option<&'static str>,
        pattern: i8,
        principal: Option<&'static str>,
    ) -> DescribeAclsRequest {
        DescribeAclsRequest::default()
            .with_resource_type_filter(acls::ANY)
            .with_resource_name_filter(name.map(StrBytes::from_static_str))
            .with_pattern_type_filter(pattern)
            .with_principal_filter(principal.map(StrBytes::from_static_str))
            .with_host_filter(None)
            .with_operation(acls::ANY)
            .with_permission_type(acls::ANY)
    }

    #[test]
    fn describes_by_filter_at_every_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        let created = create_acls::handle(
            &context,
            &header(3),
            CreateAclsRequest::default().with_creations(vec![
                creation("t", "User:a", 3, 3),
                creation("t", "User:b", 4, 2),
                creation("u", "User:a", 3, 3),
                creation("pre", "User:a", 3, 3).with_resource_pattern_type(4),
            ]),
        );
        assert!(created.results.iter().all(|r| r.error_code == 0));
        for version in versions(ApiKey::DescribeAcls) {
            let all = handle(&context, &header(version), filter(None, acls::ANY, None));
            assert_encodes(&all, version);
            assert_eq!(all.error_code, 0);
            let count: usize = all.resources.iter().map(|r| r.acls.len()).sum();
            assert_eq!((all.resources.len(), count), (3, 4), "{all:?}");

            let t = handle(
                &context,
                &header(version),
                filter(Some("t"), acls::ANY, None),
            );
            assert_eq!(t.resources.len(), 1);
            assert_eq!(t.resources[0].acls.len(), 2);

            let b = handle(
                &context,
                &header(version),
                filter(Some("t"), 3, Some("User:b")),
            );
            assert_eq!(b.resources[0].acls.len(), 1);
            assert_eq!(b.resources[0].acls[0].permission_type, 2);
            assert_eq!(b.resources[0].acls[0].operation, 4);

            // MATCH finds the PREFIXED binding that covers "prefix".
            let matched = handle(
                &context,
                &header(version),
                filter(Some("prefix"), acls::PATTERN_MATCH, None),
            );
            assert_eq!(matched.resources.len(), 1);
            assert_eq!(matched.resources[0].pattern_type, 4);

            let bad = handle(&context, &header(version), filter(None, 0, None));
            assert_eq!(bad.error_code, errors::INVALID_REQUEST);
            assert_encodes(&bad, version);
        }
    }
}
