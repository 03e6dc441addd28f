//! CreateAcls (v1–3): adds ACL bindings to the broker's authorizer (`weir_core::acl`),
//! durably, in one write per request. Needs ALTER on the cluster. A binding with an
//! UNKNOWN or ANY part, an empty name, or a principal that is not `Type:name` gets
//! INVALID_REQUEST; the others of the same request are still created.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse, RequestHeader};
use kafka_protocol::protocol::StrBytes;
use weir_core::acl::{AclBinding, Created, Operation, ResourcePattern};

use super::Context;
use crate::acls;
use crate::errors;

pub fn handle(
    context: &Context,
    _header: &RequestHeader,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let result = |code: i16, message: Option<String>| {
        AclCreationResult::default()
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string))
    };
    if !context.cluster_allowed(Operation::Alter) {
        let denied = request
            .creations
            .iter()
            .map(|_| result(errors::CLUSTER_AUTHORIZATION_FAILED, None))
            .collect();
        return CreateAclsResponse::default().with_results(denied);
    }
    let parsed: Vec<Result<AclBinding, String>> = request.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let created = context.broker.create_acls(valid);
    let mut created = match created {
        Ok(created) => created.into_iter(),
        Err(error) => {
            tracing::error!(%error, "could not write the ACLs");
            let failed = parsed
                .iter()
                .map(|p| match p {
                    Ok(_) => result(errors::UNKNOWN_SERVER_ERROR, Some(error.to_string())),
                    Err(reason) => result(errors::INVALID_REQUEST, Some(reason.clone())),
                })
                .collect();
            return CreateAclsResponse::default().with_results(failed);
        }
    };
    let results = parsed
        .into_iter()
        .map(|p| match p {
            Err(reason) => result(errors::INVALID_REQUEST, Some(reason)),
            Ok(_) => match created.next() {
                Some(Created::Ok) => result(errors::NONE, None),
                Some(Created::TooMany) | None => result(
                    errors::INVALID_REQUEST,
                    Some(format!(
                        "the broker holds at most {} ACLs",
                        weir_core::acl::ACLS_MAX
                    )),
                ),
            },
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// A creation in core terms, or why Kafka refuses it.
fn binding(creation: &AclCreation) -> Result<AclBinding, String> {
    let resource_type = acls::resource_type(creation.resource_type)
        .ok_or_else(|| format!("invalid resource type {}", creation.resource_type))?;
    let pattern_type = acls::pattern_type(creation.resource_pattern_type)
        .ok_or_else(|| format!("invalid pattern type {}", creation.resource_pattern_type))?;
    let operation = acls::operation(creation.operation)
        .ok_or_else(|| format!("invalid operation {}", creation.operation))?;
    let permission = acls::permission(creation.permission_type)
        .ok_or_else(|| format!("invalid permission type {}", creation.permission_type))?;
    if creation.resource_name.is_empty() {
        return Err("the resource name is empty".into());
    }
    let principal = creation.principal.to_string();
    if !principal
        .split_once(':')
        .is_some_and(|(kind, name)| !kind.is_empty() && !name.is_empty())
    {
        return Err(format!(
            "principal {principal:?} is not of the form Type:name"
        ));
    }
    if creation.host.is_empty() {
        return Err("the host is empty (use * for every host)".into());
    }
    Ok(AclBinding {
        pattern: ResourcePattern {
            resource_type,
            name: creation.resource_name.to_string(),
            pattern_type,
        },
        principal,
        host: creation.host.to_string(),
        operation,
        permission,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use kafka_protocol::messages::ApiKey;

    use super::super::metadata::testing::{assert_encodes, context, header, versions};
    use super::*;

    /// A creation of Kafka codes: topic `name`, LITERAL, principal, host `*`.
    pub(crate) fn creation(name: &str, principal: &str, op: i8, permission: i8) -> AclCreation {
        AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(name.into()))
            .with_resource_pattern_type(3)
            .with_principal(StrBytes::from_string(principal.into()))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(op)
            .with_permission_type(permission)
    }

    #[test]
    fn creates_valid_bindings_and_refuses_invalid_ones_at_every_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        for version in versions(ApiKey::CreateAcls) {
            let name = format!("t{version}");
            let request = CreateAclsRequest::default().with_creations(vec![
                creation(&name, "User:test", 3, 3),
                creation(&name, "User:test", 1, 3), // ANY operation
                creation(&name, "nocolon", 3, 3),
                creation(&name, "User:test", 3, 0), // UNKNOWN permission
                creation("", "User:test", 3, 3),
                creation(&name, "User:test", 3, 3).with_resource_pattern_type(2), // MATCH
                creation(&name, "User:test", 3, 3), // a duplicate succeeds
            ]);
            let response = handle(&context, &header(version), request);
            assert_encodes(&response, version);
            let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
            assert_eq!(
                codes,
                [0, 42, 42, 42, 42, 42, 0],
                "version {version}: {response:?}"
            );
            let stored = context
                .broker
                .describe_acls(&acls::filter(2, Some(&name), 1, None, None, 1, 1).expect("filter"));
            assert_eq!(stored.len(), 1, "version {version}");
            assert_eq!(stored[0].principal, "User:test");
        }
    }

    #[test]
    fn needs_alter_on_the_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = context(dir.path());
        // DENY ALTER on the cluster for everyone.
        let deny = creation(acls::CLUSTER_NAME, "User:*", 7, 2).with_resource_type(4);
        let response = handle(
            &context,
            &header(3),
            CreateAclsRequest::default().with_creations(vec![deny]),
        );
        assert_eq!(response.results[0].error_code, 0);
        let response = handle(
            &context,
            &header(3),
            CreateAclsRequest::default().with_creations(vec![creation("t", "User:a", 3, 3)]),
        );
        assert_eq!(
            response.results[0].error_code,
            errors::CLUSTER_AUTHORIZATION_FAILED
        );
    }
}
