#!/usr/bin/env python3
"""Hostile requests through a gRPC C-core client (Python grpcio), against a running all-in-one.

C-core clients drop a response whose metadata passes 16 KiB and report RESOURCE_EXHAUSTED
instead of the server's answer; they are also the clients most platform teams script with. This
checks, with requests encoded by hand (no generated code), that each answer arrives as the code
the server meant: lists of 10,000 unknown skills, a megabyte skill id and 10,000 assessment
answers are INVALID_ARGUMENT, undecodable bytes are INVALID_ARGUMENT, an oversized message is
RESOURCE_EXHAUSTED, a duplicated authorization header is UNAUTHENTICATED.

Usage: ccore-check.py HOST:PORT ACCESS_TOKEN
"""
import sys

import grpc


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, payload):
    """A length-delimited field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def text(number, value):
    return field(number, value.encode())


def check(name, call, body, want, metadata):
    try:
        call(body, metadata=metadata, timeout=30)
        got = grpc.StatusCode.OK
        message = ""
    except grpc.RpcError as e:
        got = e.code()
        message = e.details() or ""
    ok = got == want
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {got.name} {message[:100]!r}")
    return ok


def main():
    addr, token = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(
        addr, options=[("grpc.max_send_message_length", 8 * 1024 * 1024)]
    )
    raw = lambda path: channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    auth = [("authorization", f"Bearer {token}")]
    create_goal = raw("/timetravelers.profiles.v1.GoalService/CreateGoal")
    upsert = raw("/timetravelers.profiles.v1.SkillService/UpsertLearnerSkill")
    submit = raw("/timetravelers.profiles.v1.AssessmentService/SubmitAssessment")
    get_me = raw("/timetravelers.identity.v1.AccountService/GetMe")

    # Goal { kind = 1 (long term) at 2, title at 3, skill_ids at 9 }
    goal = varint(2 << 3) + varint(1) + text(3, "Everything")
    goal += b"".join(text(9, f"no-such-skill-{i}") for i in range(10_000))
    answers = b"".join(field(2, text(1, f"q{i}") + text(2, "a")) for i in range(10_000))
    results = [
        check("10,000 unknown skills", create_goal, field(1, goal), grpc.StatusCode.INVALID_ARGUMENT, auth),
        check("a 1 MB skill id", upsert, text(1, "k" * 1_000_000) + varint(2 << 3) + varint(3),
              grpc.StatusCode.INVALID_ARGUMENT, auth),
        check("10,000 assessment answers", submit, varint(1 << 3) + varint(1) + answers,
              grpc.StatusCode.INVALID_ARGUMENT, auth),
        check("invalid UTF-8", upsert, field(1, b"\xff\xfe"), grpc.StatusCode.INVALID_ARGUMENT, auth),
        check("a truncated varint", upsert, b"\x10\x80", grpc.StatusCode.INVALID_ARGUMENT, auth),
        check("a 5 MiB message", upsert, field(1000, b"z" * (5 * 1024 * 1024)),
              grpc.StatusCode.RESOURCE_EXHAUSTED, auth),
        check("two authorization headers", get_me, b"",
              grpc.StatusCode.UNAUTHENTICATED, auth + [("authorization", "Bearer x.y.z")]),
        check("the token still works", get_me, b"", grpc.StatusCode.OK, auth),
    ]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
