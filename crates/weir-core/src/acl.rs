//! Access control lists: Kafka's ACL model and the matching rules of its
//! `StandardAuthorizer`, over bindings kept in one small file, `<data>/acls`, rewritten
//! atomically on every change (temporary file, fsync, rename, fsync of the directory), as
//! the topic catalog is.
//!
//! A file rather than records in an internal topic: ACLs are few, change rarely, are read
//! whole at startup and must be in memory before the first request is authorized; a
//! rewrite of a few kilobytes per change costs nothing, and one node has no followers
//! to replicate a topic to.
//!
//! Semantics (Kafka's, with `allow.everyone.if.no.acl.found=true`):
//! - A resource no binding matches at all is open to everyone, so a broker without ACLs
//!   behaves as before ACLs existed.
//! - Once some binding matches the resource, an action is allowed only when an ALLOW
//!   binding matches it and no DENY binding does: DENY wins.
//! - A binding matches a resource when its type is the resource's and its pattern is
//!   LITERAL with the same name or `*`, or PREFIXED with a prefix of the name.
//! - A binding matches a principal that is equal or when it names `User:*`; a host that
//!   is equal or when it names `*`; an operation that is equal or when it names ALL.
//!   An ALLOW of READ, WRITE, DELETE or ALTER also allows DESCRIBE, and an ALLOW of
//!   ALTER_CONFIGS allows DESCRIBE_CONFIGS (a DENY implies nothing).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{RwLockReadGuard, RwLockWriteGuard};

use crate::Broker;

/// Most bindings the broker keeps: a bound on the file and on each authorization's scan.
/// Kafka clusters with more than a few thousand ACLs are rare; a request that would pass
/// this gets an error for the bindings beyond it.
pub const ACLS_MAX: usize = 10_000;
/// Largest ACL file read back: `ACLS_MAX` bindings of a few hundred bytes each.
const ACL_FILE_MAX_BYTES: u64 = 16 * 1024 * 1024;
const ACL_FILE: &str = "acls";
const ACL_FILE_TMP: &str = "acls.tmp";

/// The resource a binding protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

/// How a binding's resource name matches names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    /// The name itself, or every name when it is `*`.
    Literal,
    /// Every name that starts with it.
    Prefixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
    CreateTokens,
    DescribeTokens,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Deny,
    Allow,
}

/// A resource name with how it matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourcePattern {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern_type: PatternType,
}

/// One ACL: who (principal, host) may or may not do what (operation) to which resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    pub pattern: ResourcePattern,
    pub principal: String,
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// The resource, name-matching and pattern part of a filter, as DescribeAcls and
/// DeleteAcls send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type; a name must be equal.
    Any,
    /// Every binding that would match the filter's name: LITERAL equal or `*`, PREFIXED
    /// a prefix of it (or equal).
    Match,
    /// Only this pattern type; a name must be equal.
    Only(PatternType),
}

/// Which bindings a DescribeAcls or DeleteAcls names. `None` is Kafka's ANY (or null).
/// Fields compare exactly: a filter for host `*` finds bindings whose host is `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, binding: &AclBinding) -> bool {
        let pattern = &binding.pattern;
        if self
            .resource_type
            .is_some_and(|t| t != pattern.resource_type)
        {
            return false;
        }
        if let PatternFilter::Only(only) = self.pattern
            && only != pattern.pattern_type
        {
            return false;
        }
        let name_matches = match (&self.name, self.pattern) {
            (None, _) => true,
            (Some(name), PatternFilter::Any | PatternFilter::Only(_)) => *name == pattern.name,
            (Some(name), PatternFilter::Match) => match pattern.pattern_type {
                PatternType::Literal => *name == pattern.name || pattern.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&pattern.name),
            },
        };
        name_matches
            && self
                .principal
                .as_ref()
                .is_none_or(|p| *p == binding.principal)
            && self.host.as_ref().is_none_or(|h| *h == binding.host)
            && self.operation.is_none_or(|o| o == binding.operation)
            && self.permission.is_none_or(|p| p == binding.permission)
    }

    /// Whether the filter matches every binding.
    pub fn is_any(&self) -> bool {
        self.resource_type.is_none()
            && self.name.is_none()
            && self.principal.is_none()
            && self.host.is_none()
            && self.operation.is_none()
            && self.permission.is_none()
    }
}

/// Kafka's wildcard resource name, principal name and host.
pub const WILDCARD: &str = "*";
/// The principal that matches every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// Who is asking: the request's principal and the host it comes from (an IP address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: &'a str,
}

/// What is asked: an operation on one named resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action<'a> {
    pub resource_type: ResourceType,
    pub name: &'a str,
    pub operation: Operation,
}

impl ResourcePattern {
    /// Whether this pattern covers the named resource.
    pub fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.name == name || self.name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&self.name),
            }
    }
}

impl Operation {
    /// Whether an ALLOW of `self` allows `asked` (ALL, itself, or an implied operation).
    fn allows(self, asked: Operation) -> bool {
        use Operation::*;
        self == All
            || self == asked
            || (asked == Describe && matches!(self, Read | Write | Delete | Alter))
            || (asked == DescribeConfigs && self == AlterConfigs)
    }

    /// Whether a DENY of `self` denies `asked` (ALL or itself: a DENY implies nothing).
    fn denies(self, asked: Operation) -> bool {
        self == Operation::All || self == asked
    }
}

/// The decision over a set of bindings, as Kafka's `StandardAuthorizer` makes it.
pub fn authorize<'b>(
    bindings: impl IntoIterator<Item = &'b AclBinding>,
    requester: &Requester<'_>,
    action: &Action<'_>,
) -> bool {
    let mut resource_has_acls = false;
    let mut allowed = false;
    for binding in bindings {
        if !binding.pattern.covers(action.resource_type, action.name) {
            continue;
        }
        resource_has_acls = true;
        let principal_matches =
            binding.principal == requester.principal || binding.principal == WILDCARD_PRINCIPAL;
        let host_matches = binding.host == requester.host || binding.host == WILDCARD;
        if !(principal_matches && host_matches) {
            continue;
        }
        match binding.permission {
            Permission::Deny if binding.operation.denies(action.operation) => return false,
            Permission::Allow if binding.operation.allows(action.operation) => allowed = true,
            _ => {}
        }
    }
    // allow.everyone.if.no.acl.found=true: a resource without bindings is open.
    allowed || !resource_has_acls
}

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Bad {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("the broker already holds {ACLS_MAX} ACLs")]
    TooMany,
}

/// The bindings, in memory and in `<data>/acls`.
pub(crate) struct AclStore {
    dir: PathBuf,
    bindings: Vec<AclBinding>,
}

impl AclStore {
    pub(crate) fn open(dir: &Path) -> Result<Self, AclError> {
        let path = dir.join(ACL_FILE);
        let io_err = |op, source| AclError::Io {
            op,
            path: path.clone(),
            source,
        };
        // A temporary file is a write that never completed: the file beside it is current.
        match fs::remove_file(dir.join(ACL_FILE_TMP)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove", e)),
        }
        let bindings = match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("stat", e)),
            Ok(meta) if meta.len() > ACL_FILE_MAX_BYTES => {
                return Err(AclError::Bad {
                    path,
                    line: 0,
                    reason: format!("{} bytes is larger than any ACL file", meta.len()),
                });
            }
            Ok(_) => {
                let text = fs::read_to_string(&path).map_err(|e| io_err("read", e))?;
                parse(&text).map_err(|(line, reason)| AclError::Bad {
                    path: path.clone(),
                    line,
                    reason,
                })?
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            bindings,
        })
    }

    pub(crate) fn bindings(&self) -> &[AclBinding] {
        &self.bindings
    }

    /// Replaces the bindings, durably first.
    fn replace(&mut self, bindings: Vec<AclBinding>) -> Result<(), AclError> {
        let path = self.dir.join(ACL_FILE);
        let tmp = self.dir.join(ACL_FILE_TMP);
        let text = render(&bindings);
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(&self.dir)?.sync_all()
        };
        write().map_err(|source| AclError::Io {
            op: "write",
            path: path.clone(),
            source,
        })?;
        self.bindings = bindings;
        Ok(())
    }
}

/// What one binding of a CreateAcls came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Added, or already present (Kafka answers success for a duplicate).
    Ok,
    TooMany,
}

impl Broker {
    fn acl_store(&self) -> RwLockReadGuard<'_, AclStore> {
        self.acls.read().unwrap_or_else(|e| e.into_inner())
    }

    fn acl_store_mut(&self) -> RwLockWriteGuard<'_, AclStore> {
        self.acls.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `requester` may perform `action`.
    pub fn authorize(&self, requester: &Requester<'_>, action: &Action<'_>) -> bool {
        let store = self.acl_store();
        // The common case, no ACLs at all, costs a read lock and a length check.
        store.bindings().is_empty() || authorize(store.bindings(), requester, action)
    }

    /// Adds bindings (durably, in one write). A binding already present is not added
    /// twice. When the file cannot be written, nothing is added.
    pub fn create_acls(&self, bindings: Vec<AclBinding>) -> Result<Vec<Created>, AclError> {
        let mut store = self.acl_store_mut();
        let mut next = store.bindings().to_vec();
        let mut results = Vec::with_capacity(bindings.len());
        for binding in bindings {
            if next.contains(&binding) {
                results.push(Created::Ok);
            } else if next.len() >= ACLS_MAX {
                results.push(Created::TooMany);
            } else {
                next.push(binding);
                results.push(Created::Ok);
            }
        }
        if next.len() != store.bindings().len() {
            store.replace(next)?;
        }
        Ok(results)
    }

    /// The bindings a filter matches.
    pub fn describe_acls(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acl_store()
            .bindings()
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Removes the bindings each filter matches (durably, in one write) and returns
    /// them per filter. A binding two filters match is reported under both, as Kafka does.
    pub fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, AclError> {
        let mut store = self.acl_store_mut();
        let matched: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| {
                store
                    .bindings()
                    .iter()
                    .filter(|b| f.matches(b))
                    .cloned()
                    .collect()
            })
            .collect();
        let next: Vec<AclBinding> = store
            .bindings()
            .iter()
            .filter(|b| !filters.iter().any(|f| f.matches(b)))
            .cloned()
            .collect();
        if next.len() != store.bindings().len() {
            store.replace(next)?;
        }
        Ok(matched)
    }
}

// The file: one binding a line, seven tab-separated fields — resource type, pattern type,
// operation, permission, then the escaped principal, host and resource name (a group
// name may hold any character; `\`, tab and newline are escaped).

fn render(bindings: &[AclBinding]) -> String {
    let mut text = String::new();
    for b in bindings {
        text.push_str(&format!(
            "{:?}\t{:?}\t{:?}\t{:?}\t{}\t{}\t{}\n",
            b.pattern.resource_type,
            b.pattern.pattern_type,
            b.operation,
            b.permission,
            escape(&b.principal),
            escape(&b.host),
            escape(&b.pattern.name),
        ));
    }
    text
}

fn parse(text: &str) -> Result<Vec<AclBinding>, (usize, String)> {
    let mut bindings = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let bad = |reason: String| (index + 1, reason);
        if bindings.len() >= ACLS_MAX {
            return Err(bad(format!("more than {ACLS_MAX} ACLs")));
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [
            resource_type,
            pattern_type,
            operation,
            permission,
            principal,
            host,
            name,
        ] = fields.as_slice()
        else {
            return Err(bad(format!("{} fields, not 7", fields.len())));
        };
        let resource_type = resource_type_named(resource_type)
            .ok_or_else(|| bad(format!("resource type {resource_type}")))?;
        let pattern_type = match *pattern_type {
            "Literal" => PatternType::Literal,
            "Prefixed" => PatternType::Prefixed,
            other => return Err(bad(format!("pattern type {other}"))),
        };
        let operation =
            operation_named(operation).ok_or_else(|| bad(format!("operation {operation}")))?;
        let permission = match *permission {
            "Allow" => Permission::Allow,
            "Deny" => Permission::Deny,
            other => return Err(bad(format!("permission {other}"))),
        };
        let text = |s: &str| unescape(s).ok_or_else(|| bad(format!("bad escape in {s:?}")));
        bindings.push(AclBinding {
            pattern: ResourcePattern {
                resource_type,
                name: text(name)?,
                pattern_type,
            },
            principal: text(principal)?,
            host: text(host)?,
            operation,
            permission,
        });
    }
    Ok(bindings)
}

fn resource_type_named(name: &str) -> Option<ResourceType> {
    use ResourceType::*;
    [
        Topic,
        Group,
        Cluster,
        TransactionalId,
        DelegationToken,
        User,
    ]
    .into_iter()
    .find(|t| format!("{t:?}") == name)
}

fn operation_named(name: &str) -> Option<Operation> {
    use Operation::*;
    [
        All,
        Read,
        Write,
        Create,
        Delete,
        Alter,
        Describe,
        ClusterAction,
        DescribeConfigs,
        AlterConfigs,
        IdempotentWrite,
        CreateTokens,
        DescribeTokens,
    ]
    .into_iter()
    .find(|o| format!("{o:?}") == name)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn binding(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        host: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            pattern: ResourcePattern {
                resource_type,
                name: name.into(),
                pattern_type,
            },
            principal: principal.into(),
            host: host.into(),
            operation,
            permission,
        }
    }

    fn topic_acl(name: &str, op: Operation, permission: Permission) -> AclBinding {
        binding(
            ResourceType::Topic,
            name,
            PatternType::Literal,
            "User:alice",
            "*",
            op,
            permission,
        )
    }

    const ALICE: Requester<'static> = Requester {
        principal: "User:alice",
        host: "10.0.0.1",
    };
    const BOB: Requester<'static> = Requester {
        principal: "User:bob",
        host: "10.0.0.2",
    };

    fn on_topic(name: &str, operation: Operation) -> Action<'_> {
        Action {
            resource_type: ResourceType::Topic,
            name,
            operation,
        }
    }

    #[test]
    fn a_resource_without_acls_is_open() {
        let acls = [topic_acl("other", Operation::Read, Permission::Allow)];
        assert!(authorize(&[], &BOB, &on_topic("t", Operation::Write)));
        assert!(authorize(&acls, &BOB, &on_topic("t", Operation::Write)));
        // A group of the same name is another resource.
        let group = Action {
            resource_type: ResourceType::Group,
            name: "other",
            operation: Operation::Read,
        };
        assert!(authorize(&acls, &BOB, &group));
    }

    #[test]
    fn once_a_resource_has_acls_only_allowed_actions_pass() {
        let acls = [topic_acl("t", Operation::Read, Permission::Allow)];
        assert!(authorize(&acls, &ALICE, &on_topic("t", Operation::Read)));
        assert!(!authorize(&acls, &ALICE, &on_topic("t", Operation::Write)));
        assert!(!authorize(&acls, &BOB, &on_topic("t", Operation::Read)));
    }

    #[test]
    fn deny_wins_over_allow() {
        let acls = [
            topic_acl("t", Operation::All, Permission::Allow),
            topic_acl("t", Operation::Write, Permission::Deny),
        ];
        assert!(authorize(&acls, &ALICE, &on_topic("t", Operation::Read)));
        assert!(!authorize(&acls, &ALICE, &on_topic("t", Operation::Write)));
        let deny_all = [
            topic_acl("t", Operation::Read, Permission::Allow),
            topic_acl("t", Operation::All, Permission::Deny),
        ];
        assert!(!authorize(
            &deny_all,
            &ALICE,
            &on_topic("t", Operation::Read)
        ));
    }

    #[test]
    fn implied_operations_follow_allow_but_not_deny() {
        for op in [
            Operation::Read,
            Operation::Write,
            Operation::Delete,
            Operation::Alter,
        ] {
            let acls = [topic_acl("t", op, Permission::Allow)];
            assert!(authorize(
                &acls,
                &ALICE,
                &on_topic("t", Operation::Describe)
            ));
        }
        let acls = [topic_acl("t", Operation::Create, Permission::Allow)];
        assert!(!authorize(
            &acls,
            &ALICE,
            &on_topic("t", Operation::Describe)
        ));
        let acls = [topic_acl("t", Operation::AlterConfigs, Permission::Allow)];
        assert!(authorize(
            &acls,
            &ALICE,
            &on_topic("t", Operation::DescribeConfigs)
        ));
        assert!(!authorize(&acls, &ALICE, &on_topic("t", Operation::Alter)));
        // DENY READ does not deny DESCRIBE.
        let acls = [
            topic_acl("t", Operation::All, Permission::Allow),
            topic_acl("t", Operation::Read, Permission::Deny),
        ];
        assert!(authorize(
            &acls,
            &ALICE,
            &on_topic("t", Operation::Describe)
        ));
    }

    #[test]
    fn wildcards_and_prefixes() {
        let any_user = binding(
            ResourceType::Topic,
            "*",
            PatternType::Literal,
            WILDCARD_PRINCIPAL,
            "*",
            Operation::Write,
            Permission::Deny,
        );
        assert!(!authorize(
            [&any_user],
            &BOB,
            &on_topic("x", Operation::Write)
        ));
        assert!(!authorize(
            [&any_user],
            &ALICE,
            &on_topic("y", Operation::Write)
        ));
        let prefixed = binding(
            ResourceType::Topic,
            "pay",
            PatternType::Prefixed,
            "User:alice",
            "10.0.0.1",
            Operation::Read,
            Permission::Allow,
        );
        assert!(authorize(
            [&prefixed],
            &ALICE,
            &on_topic("payments", Operation::Read)
        ));
        // From another host the binding does not apply, and the resource has ACLs.
        let elsewhere = Requester {
            principal: "User:alice",
            host: "10.0.0.9",
        };
        assert!(!authorize(
            [&prefixed],
            &elsewhere,
            &on_topic("payments", Operation::Read)
        ));
        // A name the prefix does not cover has no ACLs.
        assert!(authorize(
            [&prefixed],
            &BOB,
            &on_topic("orders", Operation::Read)
        ));
        // A literal `*` name in a PREFIXED pattern is only a prefix "*".
        let star_prefix = binding(
            ResourceType::Topic,
            "*",
            PatternType::Prefixed,
            WILDCARD_PRINCIPAL,
            "*",
            Operation::All,
            Permission::Deny,
        );
        assert!(authorize(
            [&star_prefix],
            &BOB,
            &on_topic("t", Operation::Read)
        ));
    }

    fn filter_all() -> AclFilter {
        AclFilter {
            resource_type: None,
            name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    #[test]
    fn filters_match_as_kafka_does() {
        let literal = topic_acl("t", Operation::Read, Permission::Allow);
        let star = topic_acl("*", Operation::Read, Permission::Allow);
        let prefixed = binding(
            ResourceType::Topic,
            "t",
            PatternType::Prefixed,
            "User:alice",
            "*",
            Operation::Read,
            Permission::Allow,
        );
        let all = filter_all();
        assert!(all.is_any());
        assert!(all.matches(&literal) && all.matches(&star) && all.matches(&prefixed));
        let named_any = AclFilter {
            name: Some("t".into()),
            ..filter_all()
        };
        assert!(named_any.matches(&literal) && named_any.matches(&prefixed));
        assert!(!named_any.matches(&star));
        let named_match = AclFilter {
            name: Some("tx".into()),
            pattern: PatternFilter::Match,
            ..filter_all()
        };
        assert!(!named_match.matches(&literal));
        assert!(named_match.matches(&star) && named_match.matches(&prefixed));
        let only_literal = AclFilter {
            pattern: PatternFilter::Only(PatternType::Literal),
            ..filter_all()
        };
        assert!(only_literal.matches(&literal) && !only_literal.matches(&prefixed));
        let host = AclFilter {
            host: Some("10.0.0.1".into()),
            ..filter_all()
        };
        assert!(
            !host.matches(&literal),
            "host compares exactly, * is not expanded"
        );
        let op = AclFilter {
            operation: Some(Operation::Write),
            ..filter_all()
        };
        assert!(!op.matches(&literal));
        let principal = AclFilter {
            principal: Some("User:alice".into()),
            permission: Some(Permission::Allow),
            resource_type: Some(ResourceType::Topic),
            ..filter_all()
        };
        assert!(principal.matches(&literal));
        let group = AclFilter {
            resource_type: Some(ResourceType::Group),
            ..filter_all()
        };
        assert!(!group.matches(&literal));
    }

    #[test]
    fn bindings_survive_reopen_and_deletes_are_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let odd = binding(
            ResourceType::Group,
            "tab\there\nnew\\line",
            PatternType::Prefixed,
            "User:x",
            "*",
            Operation::Read,
            Permission::Deny,
        );
        let plain = topic_acl("t", Operation::Write, Permission::Allow);
        {
            let mut store = AclStore::open(dir.path()).expect("open");
            assert!(store.bindings().is_empty());
            store
                .replace(vec![odd.clone(), plain.clone()])
                .expect("write");
        }
        let mut store = AclStore::open(dir.path()).expect("reopen");
        assert_eq!(store.bindings(), &[odd.clone(), plain.clone()]);
        store.replace(vec![plain.clone()]).expect("write");
        fs::write(dir.path().join(ACL_FILE_TMP), "half a write").expect("tmp");
        let store = AclStore::open(dir.path()).expect("reopen");
        assert_eq!(store.bindings(), &[plain]);
        assert!(!dir.path().join(ACL_FILE_TMP).exists());
        fs::write(dir.path().join(ACL_FILE), "Topic\tLiteral\n").expect("corrupt");
        assert!(matches!(
            AclStore::open(dir.path()),
            Err(AclError::Bad { line: 1, .. })
        ));
    }

    fn arb_binding() -> impl Strategy<Value = AclBinding> {
        let resource_type = prop::sample::select(vec![ResourceType::Topic, ResourceType::Group]);
        let pattern_type = prop::sample::select(vec![PatternType::Literal, PatternType::Prefixed]);
        let op = prop::sample::select(vec![
            Operation::All,
            Operation::Read,
            Operation::Write,
            Operation::Describe,
            Operation::Alter,
        ]);
        let permission = prop::sample::select(vec![Permission::Allow, Permission::Deny]);
        let principal = prop::sample::select(vec!["User:a", "User:b", WILDCARD_PRINCIPAL]);
        let host = prop::sample::select(vec!["h1", "h2", "*"]);
        (
            resource_type,
            "[ab*\\\\\t\n]{0,3}",
            pattern_type,
            principal,
            host,
            op,
            permission,
        )
            .prop_map(|(t, name, pt, principal, host, op, perm)| {
                binding(t, &name, pt, principal, host, op, perm)
            })
    }

    proptest! {
        #[test]
        fn the_file_round_trips(bindings in prop::collection::vec(arb_binding(), 0..20)) {
            prop_assert_eq!(parse(&render(&bindings)), Ok(bindings));
        }

        /// Adding a DENY never allows more; adding an ALLOW never denies a resource that
        /// already had ACLs; with no binding covering the resource everything is allowed.
        #[test]
        fn deny_only_narrows_and_allow_only_widens(
            bindings in prop::collection::vec(arb_binding(), 0..12),
            extra in arb_binding(),
            name in "[ab]{0,3}",
            principal in prop::sample::select(vec!["User:a", "User:b"]),
            host in prop::sample::select(vec!["h1", "h2"]),
            op in prop::sample::select(vec![Operation::Read, Operation::Write, Operation::Describe]),
        ) {
            let requester = Requester { principal, host };
            let action = on_topic(&name, op);
            let before = authorize(&bindings, &requester, &action);
            let covered = bindings.iter().any(|b| b.pattern.covers(ResourceType::Topic, &name));
            if !covered {
                prop_assert!(before);
            }
            let mut after = bindings.clone();
            after.push(extra.clone());
            let now = authorize(&after, &requester, &action);
            match extra.permission {
                Permission::Deny => prop_assert!(!now || before),
                Permission::Allow if covered => prop_assert!(now || !before),
                Permission::Allow => {}
            }
        }
    }
}
