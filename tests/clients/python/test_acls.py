"""ACLs through confluent-kafka's AdminClient, enforced on a real producer.

Every connection is `User:ANONYMOUS` until weir has SASL; a topic without ACLs stays open
(`allow.everyone.if.no.acl.found=true`), so these tests add ACLs to one topic only.
"""

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from clients import OP_TIMEOUT_S, admin, producer, produce_all
from test_confluent import create_topic

ANONYMOUS = "User:ANONYMOUS"


def binding(topic, principal, operation, permission, pattern=ResourcePatternType.LITERAL):
    return AclBinding(ResourceType.TOPIC, topic, pattern, principal, "*", operation, permission)


def topic_filter(topic, principal=None, operation=AclOperation.ANY, permission=AclPermissionType.ANY,
                 pattern=ResourcePatternType.ANY):
    return AclBindingFilter(ResourceType.TOPIC, topic, pattern, principal, None, operation, permission)


def create_acls(client, bindings):
    for future in client.create_acls(bindings, request_timeout=OP_TIMEOUT_S).values():
        assert future.result(OP_TIMEOUT_S) is None


def produce_error(bootstrap, topic):
    """The delivery error of one message to partition 0 (None when it was acknowledged)."""
    p = producer(bootstrap)
    errors = []
    p.produce(topic, value=b"v", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(OP_TIMEOUT_S)
    assert len(errors) == 1, "no delivery report"
    return errors[0]


def test_deny_write_refuses_produce_until_deleted(bootstrap, topic_name):
    topic = topic_name()
    create_topic(bootstrap, topic, 1)
    client = admin(bootstrap)
    # Once the topic has ACLs only what they allow passes: allow everything to everyone,
    # then deny WRITE to the anonymous principal (DENY wins).
    create_acls(client, [
        binding(topic, "User:*", AclOperation.ALL, AclPermissionType.ALLOW),
        binding(topic, ANONYMOUS, AclOperation.WRITE, AclPermissionType.DENY),
    ])

    err = produce_error(bootstrap, topic)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err

    deny_filter = topic_filter(topic, ANONYMOUS, AclOperation.WRITE, AclPermissionType.DENY)
    deleted = client.delete_acls([deny_filter], request_timeout=OP_TIMEOUT_S)[deny_filter].result(OP_TIMEOUT_S)
    assert [(b.principal, b.operation, b.permission_type) for b in deleted] == [
        (ANONYMOUS, AclOperation.WRITE, AclPermissionType.DENY)
    ]

    assert produce_error(bootstrap, topic) is None
    # Another topic without ACLs was open all along.
    other = topic_name("open")
    delivered = produce_all(producer(bootstrap), other, [{"value": b"x"}])
    assert delivered[0].error() is None


def test_describe_filters(bootstrap, topic_name):
    topic = topic_name()
    client = admin(bootstrap)
    create_acls(client, [
        binding(topic, "User:alice", AclOperation.READ, AclPermissionType.ALLOW),
        binding(topic, "User:bob", AclOperation.WRITE, AclPermissionType.DENY),
        binding(topic[:4], "User:alice", AclOperation.DESCRIBE, AclPermissionType.ALLOW,
                ResourcePatternType.PREFIXED),
    ])

    def describe(f):
        found = client.describe_acls(f, request_timeout=OP_TIMEOUT_S).result(OP_TIMEOUT_S)
        return sorted((b.name, b.principal, b.operation.name, b.permission_type.name) for b in found)

    assert describe(topic_filter(topic)) == [
        (topic, "User:alice", "READ", "ALLOW"),
        (topic, "User:bob", "WRITE", "DENY"),
    ]
    assert describe(topic_filter(topic, principal="User:bob")) == [(topic, "User:bob", "WRITE", "DENY")]
    assert describe(topic_filter(topic, permission=AclPermissionType.ALLOW)) == [
        (topic, "User:alice", "READ", "ALLOW")
    ]
    # MATCH: every binding that applies to the name, the PREFIXED one included.
    assert describe(topic_filter(topic, pattern=ResourcePatternType.MATCH)) == [
        (topic[:4], "User:alice", "DESCRIBE", "ALLOW"),
        (topic, "User:alice", "READ", "ALLOW"),
        (topic, "User:bob", "WRITE", "DENY"),
    ]
    assert describe(topic_filter(None, pattern=ResourcePatternType.PREFIXED)) == [
        (topic[:4], "User:alice", "DESCRIBE", "ALLOW")
    ]


def test_acls_survive_a_restart(weir, topic_name):
    topic = topic_name()
    client = admin(weir.bootstrap)
    create_acls(client, [binding(topic, "User:carol", AclOperation.READ, AclPermissionType.ALLOW)])
    weir.restart()
    client = admin(weir.bootstrap)
    found = client.describe_acls(topic_filter(topic), request_timeout=OP_TIMEOUT_S).result(OP_TIMEOUT_S)
    assert [(b.name, b.principal) for b in found] == [(topic, "User:carol")]


def test_invalid_binding_is_refused(bootstrap):
    client = admin(bootstrap)
    bad = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "no-colon", "*",
                     AclOperation.READ, AclPermissionType.ALLOW)
    with pytest.raises(Exception) as raised:
        client.create_acls([bad], request_timeout=OP_TIMEOUT_S)[bad].result(OP_TIMEOUT_S)
    assert "INVALID_REQUEST" in str(raised.value) or "Type:name" in str(raised.value), raised.value
