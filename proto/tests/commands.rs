//! Command encoding and decoding against golden bytes and nsqd v1.3.0's
//! exact error texts (`nsqd/protocol_v2.go`, `protocol_v2_test.go`).

use bytes::{BufMut, Bytes, BytesMut};
use nsq_proto::command::{encode, MAX_LINE_LEN};
use nsq_proto::frame::encode_proto_error;
use nsq_proto::message::id_from_u64;
use nsq_proto::{
    decode_command, decode_magic, Command, ErrorCode, Limits, MessageId, ProtoError, Verb,
};

/// The limits nsqd's TestSizeLimits uses, plus max-rdy-count 50 from TestMaxRdyCount.
fn small() -> Limits {
    Limits {
        max_msg_size: 100,
        max_body_size: 1000,
        max_req_timeout_ms: 3_600_000,
        max_rdy_count: 50,
    }
}

const ID: &[u8; 16] = b"0123456789abcdef";

fn id() -> MessageId {
    MessageId(*ID)
}

fn decode_one(input: &[u8], limits: &Limits) -> Result<Option<Command>, ProtoError> {
    let mut buf = BytesMut::from(input);
    decode_command(&mut buf, limits)
}

/// Decodes `input` and returns the error frame data nsqd would send.
fn error_text(input: &[u8], limits: &Limits) -> String {
    let err = match decode_one(input, limits) {
        Err(err) => err,
        Ok(other) => panic!("expected an error for {input:?}, got {other:?}"),
    };
    let mut frame = BytesMut::new();
    encode_proto_error(&mut frame, &err);
    // The frame data must equal code + " " + description.
    let data = String::from_utf8(frame[8..].to_vec()).unwrap();
    assert_eq!(data, format!("{} {}", err.code(), err.description()));
    assert!(err.code().is_fatal());
    data
}

fn with_size(line: &[u8], size: i32) -> Vec<u8> {
    let mut v = line.to_vec();
    v.extend_from_slice(&size.to_be_bytes());
    v
}

fn mpub_bytes(topic: &str, bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode::mpub(&mut buf, topic, bodies);
    buf.to_vec()
}

// ---------------------------------------------------------------- encoders

/// An encoder call and the bytes it must produce.
type Golden = (fn(&mut BytesMut), &'static [u8]);

#[test]
fn encode_golden_bytes() {
    let cases: Vec<Golden> = vec![
        (encode::magic, b"  V2"),
        (
            |b| encode::identify(b, b"{}"),
            b"IDENTIFY\n\x00\x00\x00\x02{}",
        ),
        (
            |b| encode::auth(b, b"secret"),
            b"AUTH\n\x00\x00\x00\x06secret",
        ),
        (|b| encode::sub(b, "t", "ch"), b"SUB t ch\n"),
        (
            |b| encode::pub_(b, "t", b"hello"),
            b"PUB t\n\x00\x00\x00\x05hello",
        ),
        (
            |b| encode::mpub(b, "t", &[&b"ab"[..], b"c"]),
            b"MPUB t\n\x00\x00\x00\x0f\x00\x00\x00\x02\x00\x00\x00\x02ab\x00\x00\x00\x01c",
        ),
        (
            |b| encode::dpub(b, "t", 1500, b"x"),
            b"DPUB t 1500\n\x00\x00\x00\x01x",
        ),
        (|b| encode::rdy(b, 2500), b"RDY 2500\n"),
        (
            |b| encode::fin(b, &MessageId(*ID)),
            b"FIN 0123456789abcdef\n",
        ),
        (
            |b| encode::req(b, &MessageId(*ID), 0),
            b"REQ 0123456789abcdef 0\n",
        ),
        (
            |b| encode::touch(b, &MessageId(*ID)),
            b"TOUCH 0123456789abcdef\n",
        ),
        (encode::cls, b"CLS\n"),
        (encode::nop, b"NOP\n"),
    ];
    for (enc, want) in cases {
        let mut buf = BytesMut::new();
        enc(&mut buf);
        assert_eq!(&buf[..], want, "{:?}", String::from_utf8_lossy(want));
    }
}

// ---------------------------------------------------------------- decoding

/// One of every command, encoded, and what it decodes to.
fn all_commands() -> (BytesMut, Vec<Command>) {
    let mut buf = BytesMut::new();
    let mut want = Vec::new();
    encode::identify(&mut buf, br#"{"feature_negotiation":true}"#);
    want.push(Command::Identify {
        body: Bytes::from_static(br#"{"feature_negotiation":true}"#),
    });
    encode::auth(&mut buf, b"s3cret");
    want.push(Command::Auth {
        body: Bytes::from_static(b"s3cret"),
    });
    encode::sub(&mut buf, "topic", "ch#ephemeral");
    want.push(Command::Sub {
        topic: "topic".into(),
        channel: "ch#ephemeral".into(),
    });
    encode::pub_(&mut buf, "topic", b"hello");
    want.push(Command::Pub {
        topic: "topic".into(),
        body: Bytes::from_static(b"hello"),
    });
    encode::mpub(&mut buf, "t.b_c-d", &[&b"one"[..], b"two", b"3"]);
    want.push(Command::Mpub {
        topic: "t.b_c-d".into(),
        bodies: vec![
            Bytes::from_static(b"one"),
            Bytes::from_static(b"two"),
            Bytes::from_static(b"3"),
        ],
    });
    encode::dpub(&mut buf, "topic", 3_600_000, b"later");
    want.push(Command::Dpub {
        topic: "topic".into(),
        defer_ms: 3_600_000,
        body: Bytes::from_static(b"later"),
    });
    encode::rdy(&mut buf, 0);
    want.push(Command::Rdy { count: 0 });
    encode::rdy(&mut buf, 2500);
    want.push(Command::Rdy { count: 2500 });
    encode::fin(&mut buf, &id());
    want.push(Command::Fin { id: id() });
    encode::req(&mut buf, &id_from_u64(7), 90_000);
    want.push(Command::Req {
        id: id_from_u64(7),
        timeout_ms: 90_000,
    });
    encode::touch(&mut buf, &id());
    want.push(Command::Touch { id: id() });
    encode::cls(&mut buf);
    want.push(Command::Cls);
    encode::nop(&mut buf);
    want.push(Command::Nop);
    (buf, want)
}

#[test]
fn decodes_every_command_pipelined() {
    let (mut buf, want) = all_commands();
    let limits = Limits::default();
    let mut got = Vec::new();
    while let Some(cmd) = decode_command(&mut buf, &limits).unwrap() {
        got.push(cmd);
    }
    assert_eq!(got, want);
    assert!(buf.is_empty());
    for (cmd, want) in got.iter().zip(&want) {
        assert_eq!(cmd.verb(), want.verb());
    }
}

#[test]
fn byte_at_a_time_gives_the_same_commands() {
    let (whole, want) = all_commands();
    let limits = Limits::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in whole.iter() {
        buf.put_u8(b);
        while let Some(cmd) = decode_command(&mut buf, &limits).unwrap() {
            got.push(cmd);
        }
    }
    assert_eq!(got, want);
    assert!(buf.is_empty());
}

#[test]
fn incomplete_commands_consume_nothing() {
    let (whole, _) = all_commands();
    let limits = Limits::default();
    // Every strict prefix of the first command (IDENTIFY) is incomplete.
    let first_len = 9 + 4 + br#"{"feature_negotiation":true}"#.len();
    for n in 0..first_len {
        let mut buf = BytesMut::from(&whole[..n]);
        assert_eq!(
            decode_command(&mut buf, &limits).unwrap(),
            None,
            "prefix {n}"
        );
        assert_eq!(buf.len(), n);
    }
    let mut buf = BytesMut::from(&whole[..first_len]);
    assert!(decode_command(&mut buf, &limits).unwrap().is_some());
    assert!(buf.is_empty());
}

#[test]
fn bodies_are_zero_copy_slices_of_the_read_buffer() {
    let mut buf = BytesMut::new();
    encode::pub_(&mut buf, "t", b"payload");
    encode::mpub(&mut buf, "t", &[&b"aa"[..], b"bbb"]);
    let base = buf.as_ptr() as usize;
    let limits = Limits::default();
    let Some(Command::Pub { body, .. }) = decode_command(&mut buf, &limits).unwrap() else {
        panic!("expected PUB");
    };
    assert_eq!(body.as_ptr() as usize, base + 6 + 4);
    let pub_len = 6 + 4 + 7;
    let Some(Command::Mpub { bodies, .. }) = decode_command(&mut buf, &limits).unwrap() else {
        panic!("expected MPUB");
    };
    assert_eq!(bodies[0].as_ptr() as usize, base + pub_len + 7 + 4 + 4 + 4);
    assert_eq!(
        bodies[1].as_ptr() as usize,
        base + pub_len + 7 + 4 + 4 + 4 + 2 + 4
    );
}

#[test]
fn line_details_match_nsqd() {
    let l = Limits::default();
    let one = |input: &[u8]| decode_one(input, &l).unwrap().unwrap();
    // Optional \r is stripped.
    assert_eq!(one(b"NOP\r\n"), Command::Nop);
    assert_eq!(one(b"FIN 0123456789abcdef\r\n"), Command::Fin { id: id() });
    assert_eq!(
        one(b"PUB t\r\n\x00\x00\x00\x01x"),
        Command::Pub {
            topic: "t".into(),
            body: Bytes::from_static(b"x")
        }
    );
    // RDY without a count means 1; an empty count parses as 0 (ByteToBase10).
    assert_eq!(one(b"RDY\n"), Command::Rdy { count: 1 });
    assert_eq!(one(b"RDY \n"), Command::Rdy { count: 0 });
    assert_eq!(one(b"RDY 50 extra\n"), Command::Rdy { count: 50 });
    // Parameters nsqd never reads are ignored.
    assert_eq!(one(b"NOP x y\n"), Command::Nop);
    assert_eq!(one(b"CLS x\n"), Command::Cls);
    assert_eq!(one(b"FIN 0123456789abcdef x\n"), Command::Fin { id: id() });
    assert_eq!(
        one(b"SUB t ch extra\n"),
        Command::Sub {
            topic: "t".into(),
            channel: "ch".into()
        }
    );
    assert_eq!(
        one(b"IDENTIFY x\n\x00\x00\x00\x02{}"),
        Command::Identify {
            body: Bytes::from_static(b"{}")
        }
    );
    // IDs are only length-checked.
    assert_eq!(
        one(b"TOUCH \xff\x00..............\n"),
        Command::Touch {
            id: MessageId(*b"\xff\x00..............")
        }
    );
    // REQ timeouts are passed through unclamped; the broker clamps.
    assert_eq!(
        one(b"REQ 0123456789abcdef 99999999\n"),
        Command::Req {
            id: id(),
            timeout_ms: 99_999_999
        }
    );
    // ... except that nsqd's int64 nanosecond arithmetic wraps, and we
    // report the value nsqd would act on.
    let Command::Req { timeout_ms, .. } = one(b"REQ 0123456789abcdef 18446744073709551615\n")
    else {
        panic!()
    };
    assert_eq!(timeout_ms, -1);
    assert_eq!(
        one(b"DPUB t 0\n\x00\x00\x00\x01x"),
        Command::Dpub {
            topic: "t".into(),
            defer_ms: 0,
            body: Bytes::from_static(b"x")
        }
    );
}

#[test]
fn error_consumes_only_the_line() {
    let l = small();
    let mut buf = BytesMut::from(&b"RDY abc\nNOP\n"[..]);
    assert!(decode_command(&mut buf, &l).is_err());
    assert_eq!(&buf[..], b"NOP\n");
    assert_eq!(decode_command(&mut buf, &l).unwrap(), Some(Command::Nop));

    let mut buf = BytesMut::from(&with_size(b"PUB t\n", 0)[..]);
    assert!(decode_command(&mut buf, &l).is_err());
    assert_eq!(&buf[..], &0i32.to_be_bytes());
}

#[test]
fn errors_know_their_verb_and_mpub_topic() {
    let l = small();
    let err = |input: &[u8]| decode_one(input, &l).unwrap_err();
    assert_eq!(err(b"RDY x\n").verb(), Some(Verb::Rdy));
    assert_eq!(err(b"SUB t c!\n").verb(), Some(Verb::Sub));
    assert_eq!(err(b"FIN x\n").verb(), Some(Verb::Fin));
    assert_eq!(err(b"AUTH x\n").verb(), Some(Verb::Auth));
    assert_eq!(err(b"BOGUS\n").verb(), None);
    let e = err(&with_size(b"MPUB topic\n", 0));
    assert_eq!((e.verb(), e.topic()), (Some(Verb::Mpub), Some("topic")));
    let e = err(&with_size(b"PUB topic\n", 0));
    assert_eq!((e.verb(), e.topic()), (Some(Verb::Pub), None));
}

// ---------------------------------------------------------------- error texts

#[test]
fn invalid_command_texts() {
    let l = small();
    assert_eq!(error_text(b"ASDF\n", &l), "E_INVALID invalid command ASDF");
    assert_eq!(
        error_text(b"INVALID_COMMAND\n", &l),
        "E_INVALID invalid command INVALID_COMMAND"
    );
    // nsqd issue #120: an empty line.
    assert_eq!(error_text(b"\n", &l), "E_INVALID invalid command ");
    assert_eq!(error_text(b"\r\n", &l), "E_INVALID invalid command ");
    // Case-sensitive, first word only, leading space gives an empty word.
    assert_eq!(error_text(b"pub t\n", &l), "E_INVALID invalid command pub");
    assert_eq!(error_text(b" NOP\n", &l), "E_INVALID invalid command ");
}

#[test]
fn parameter_count_texts() {
    let l = small();
    for (input, want) in [
        (
            &b"SUB\n"[..],
            "E_INVALID SUB insufficient number of parameters",
        ),
        (
            b"SUB t\n",
            "E_INVALID SUB insufficient number of parameters",
        ),
        (b"PUB\n", "E_INVALID PUB insufficient number of parameters"),
        (
            b"MPUB\n",
            "E_INVALID MPUB insufficient number of parameters",
        ),
        (
            b"DPUB t\n",
            "E_INVALID DPUB insufficient number of parameters",
        ),
        (b"FIN\n", "E_INVALID FIN insufficient number of params"),
        (
            b"REQ 0123456789abcdef\n",
            "E_INVALID REQ insufficient number of params",
        ),
        (b"TOUCH\n", "E_INVALID TOUCH insufficient number of params"),
        (b"AUTH x\n", "E_INVALID AUTH invalid number of parameters"),
        (b"AUTH \n", "E_INVALID AUTH invalid number of parameters"),
    ] {
        assert_eq!(error_text(input, &l), want);
    }
}

#[test]
fn name_texts() {
    let l = small();
    for (input, want) in [
        (
            &b"SUB x! ch\n"[..],
            r#"E_BAD_TOPIC SUB topic name "x!" is not valid"#,
        ),
        (
            b"SUB  ch\n",
            r#"E_BAD_TOPIC SUB topic name "" is not valid"#,
        ),
        (
            b"SUB t ch!\n",
            r#"E_BAD_CHANNEL SUB channel name "ch!" is not valid"#,
        ),
        (
            b"SUB t \n",
            r#"E_BAD_CHANNEL SUB channel name "" is not valid"#,
        ),
        (
            b"PUB x!\n",
            r#"E_BAD_TOPIC PUB topic name "x!" is not valid"#,
        ),
        (
            b"PUB a\"\\\n",
            r#"E_BAD_TOPIC PUB topic name "a\"\\" is not valid"#,
        ),
        (
            b"PUB \t\xff\n",
            r#"E_BAD_TOPIC PUB topic name "\t\xff" is not valid"#,
        ),
        (
            b"DPUB x! 1\n",
            r#"E_BAD_TOPIC DPUB topic name "x!" is not valid"#,
        ),
        // nsqd v1.3.0 repeats the code inside the MPUB description.
        (
            b"MPUB x!\n",
            r#"E_BAD_TOPIC E_BAD_TOPIC MPUB topic name "x!" is not valid"#,
        ),
    ] {
        assert_eq!(error_text(input, &l), want);
    }
    let long = format!("PUB {}\n", "a".repeat(65));
    assert_eq!(
        error_text(long.as_bytes(), &l),
        format!(
            r#"E_BAD_TOPIC PUB topic name "{}" is not valid"#,
            "a".repeat(65)
        )
    );
}

#[test]
fn numeric_parameter_texts() {
    let l = small();
    for (input, want) in [
        (&b"RDY abc\n"[..], "E_INVALID RDY could not parse count abc"),
        (b"RDY -1\n", "E_INVALID RDY could not parse count -1"),
        (b"RDY 51\n", "E_INVALID RDY count 51 out of range 0-50"),
        // ByteToBase10 wraps in a uint64, then nsqd casts to int64.
        (
            b"RDY 18446744073709551615\n",
            "E_INVALID RDY count -1 out of range 0-50",
        ),
        (
            b"DPUB t abc\n",
            "E_INVALID DPUB could not parse timeout abc",
        ),
        (b"DPUB t -1\n", "E_INVALID DPUB could not parse timeout -1"),
        (
            b"DPUB t 3600100\n",
            "E_INVALID DPUB timeout 3600100 out of range 0-3600000",
        ),
        (
            b"DPUB t 18446744073709551615\n",
            "E_INVALID DPUB timeout 18446744073709551615 out of range 0-3600000",
        ),
        (
            b"REQ 0123456789abcdef abc\n",
            "E_INVALID REQ could not parse timeout abc",
        ),
        (
            b"REQ 0123456789abcdef -1\n",
            "E_INVALID REQ could not parse timeout -1",
        ),
        (b"FIN \n", "E_INVALID invalid message ID"),
        (b"FIN 0123456789abcde\n", "E_INVALID invalid message ID"),
        (b"FIN 0123456789abcdef0\n", "E_INVALID invalid message ID"),
        (b"REQ short 1\n", "E_INVALID invalid message ID"),
        (b"TOUCH x\n", "E_INVALID invalid message ID"),
    ] {
        assert_eq!(error_text(input, &l), want);
    }
    // Order: the ID is checked before the timeout.
    assert_eq!(error_text(b"REQ x y\n", &l), "E_INVALID invalid message ID");
    // Order: the topic is checked before the timeout.
    assert_eq!(
        error_text(b"DPUB x! y\n", &l),
        r#"E_BAD_TOPIC DPUB topic name "x!" is not valid"#
    );
}

#[test]
fn body_size_texts_reported_from_the_size_prefix_alone() {
    let l = small();
    for (line, size, want) in [
        (
            &b"PUB t\n"[..],
            0,
            "E_BAD_MESSAGE PUB invalid message body size 0",
        ),
        (
            b"PUB t\n",
            -1,
            "E_BAD_MESSAGE PUB invalid message body size -1",
        ),
        (
            b"PUB t\n",
            105,
            "E_BAD_MESSAGE PUB message too big 105 > 100",
        ),
        (
            b"DPUB t 1\n",
            0,
            "E_BAD_MESSAGE DPUB invalid message body size 0",
        ),
        (
            b"DPUB t 1\n",
            101,
            "E_BAD_MESSAGE DPUB message too big 101 > 100",
        ),
        (b"MPUB t\n", 0, "E_BAD_BODY MPUB invalid body size 0"),
        (
            b"MPUB t\n",
            i32::MIN,
            "E_BAD_BODY MPUB invalid body size -2147483648",
        ),
        (
            b"MPUB t\n",
            1148,
            "E_BAD_BODY MPUB body too big 1148 > 1000",
        ),
        (b"IDENTIFY\n", 0, "E_BAD_BODY IDENTIFY invalid body size 0"),
        (
            b"IDENTIFY\n",
            1001,
            "E_BAD_BODY IDENTIFY body too big 1001 > 1000",
        ),
        (b"AUTH\n", -5, "E_BAD_BODY AUTH invalid body size -5"),
        (
            b"AUTH\n",
            i32::MAX,
            "E_BAD_BODY AUTH body too big 2147483647 > 1000",
        ),
    ] {
        assert_eq!(error_text(&with_size(line, size), &l), want);
    }
    // Valid sizes wait for the body.
    assert_eq!(decode_one(&with_size(b"PUB t\n", 100), &l).unwrap(), None);
    assert_eq!(decode_one(&with_size(b"MPUB t\n", 1000), &l).unwrap(), None);
}

#[test]
fn mpub_texts_match_nsqd_size_limits_test() {
    let l = small();
    // TestSizeLimits: 11 x 100 bytes.
    let body = mpub_bytes("t", &vec![vec![0u8; 100]; 11]);
    assert_eq!(
        error_text(&body, &l),
        "E_BAD_BODY MPUB body too big 1148 > 1000"
    );
    // 5 x 100 bytes then an empty message.
    let mut msgs = vec![vec![0u8; 100]; 5];
    msgs.push(vec![]);
    assert_eq!(
        error_text(&mpub_bytes("t", &msgs), &l),
        "E_BAD_MESSAGE MPUB invalid message(5) body size 0"
    );
    // 5 x 101 bytes.
    assert_eq!(
        error_text(&mpub_bytes("t", &vec![vec![0u8; 101]; 5]), &l),
        "E_BAD_MESSAGE MPUB message too big 101 > 100"
    );
    // 5 x 100 is fine.
    let Some(Command::Mpub { bodies, .. }) =
        decode_one(&mpub_bytes("t", &vec![vec![7u8; 100]; 5]), &l).unwrap()
    else {
        panic!("expected MPUB");
    };
    assert_eq!(bodies.len(), 5);
    assert!(bodies
        .iter()
        .all(|b| b.len() == 100 && b.iter().all(|&x| x == 7)));
}

#[test]
fn mpub_count_texts() {
    let l = small();
    let mpub_with_count = |count: i32| {
        let mut v = with_size(b"MPUB t\n", 10);
        v.extend_from_slice(&count.to_be_bytes());
        v
    };
    assert_eq!(
        error_text(&mpub_with_count(0), &l),
        "E_BAD_BODY MPUB invalid message count 0"
    );
    assert_eq!(
        error_text(&mpub_with_count(-3), &l),
        "E_BAD_BODY MPUB invalid message count -3"
    );
    // (1000 - 4) / 5 = 199 is the most a 1000-byte body can hold.
    assert_eq!(
        error_text(&mpub_with_count(200), &l),
        "E_BAD_BODY MPUB invalid message count 200"
    );
    // 199 passes the count check and then waits for messages.
    assert_eq!(decode_one(&mpub_with_count(199), &l).unwrap(), None);
}

#[test]
fn mpub_message_errors_are_reported_before_the_body_is_complete() {
    let l = small();
    // Body claims 1000 bytes; message 0 is fine, message 1 has size 0, and
    // nothing after that header has arrived.
    let mut v = with_size(b"MPUB t\n", 1000);
    v.extend_from_slice(&3i32.to_be_bytes());
    v.extend_from_slice(&2i32.to_be_bytes());
    v.extend_from_slice(b"ok");
    v.extend_from_slice(&0i32.to_be_bytes());
    assert_eq!(
        error_text(&v, &l),
        "E_BAD_MESSAGE MPUB invalid message(1) body size 0"
    );
    // Same with a too-big second message.
    let mut v = with_size(b"MPUB t\n", 1000);
    v.extend_from_slice(&3i32.to_be_bytes());
    v.extend_from_slice(&2i32.to_be_bytes());
    v.extend_from_slice(b"ok");
    v.extend_from_slice(&101i32.to_be_bytes());
    assert_eq!(
        error_text(&v, &l),
        "E_BAD_MESSAGE MPUB message too big 101 > 100"
    );
}

#[test]
fn mpub_body_size_must_match_messages() {
    let l = small();
    let build = |body_size: i32, count: i32, sizes: &[i32], pad: usize| {
        let mut v = with_size(b"MPUB t\n", body_size);
        v.extend_from_slice(&count.to_be_bytes());
        for &s in sizes {
            v.extend_from_slice(&s.to_be_bytes());
            v.extend(std::iter::repeat_n(b'x', s.max(0) as usize));
        }
        v.extend(std::iter::repeat_n(b'x', pad));
        v
    };
    let mismatch =
        |size: i32| format!("E_BAD_BODY MPUB body size {size} does not match its messages");
    // Consistent: 4 + (4 + 3) = 11.
    assert!(decode_one(&build(11, 1, &[3], 0), &l).unwrap().is_some());
    // Body too small to hold the count.
    assert_eq!(error_text(&build(3, 1, &[], 0), &l), mismatch(3));
    // The message runs past the declared body.
    assert_eq!(error_text(&build(10, 1, &[3], 0), &l), mismatch(10));
    // A size header runs past the declared body.
    assert_eq!(error_text(&build(13, 2, &[3], 2), &l), mismatch(13));
    // Bytes left over after the last message.
    assert_eq!(error_text(&build(12, 1, &[3], 1), &l), mismatch(12));
    // Leftover is known as soon as the last header is read, before the data.
    let mut partial = build(20, 1, &[3], 0);
    partial.truncate(partial.len() - 3);
    assert_eq!(error_text(&partial, &l), mismatch(20));
    // A size value error takes precedence over a mismatch in the same field.
    assert_eq!(
        error_text(&build(9, 1, &[200], 0)[..7 + 4 + 4 + 4], &l),
        "E_BAD_MESSAGE MPUB message too big 200 > 100"
    );
}

#[test]
fn line_length_limit() {
    let l = small();
    // A line of exactly MAX_LINE_LEN bytes with its '\n' is accepted.
    let mut ok = vec![b'N', b'O', b'P', b' '];
    ok.resize(MAX_LINE_LEN - 1, b'x');
    ok.push(b'\n');
    assert_eq!(decode_one(&ok, &l).unwrap(), Some(Command::Nop));
    // One byte more without a newline is an error, and consumes nothing.
    let long = vec![b'x'; MAX_LINE_LEN];
    let mut buf = BytesMut::from(&long[..]);
    let err = decode_command(&mut buf, &l).unwrap_err();
    assert!(matches!(err, ProtoError::LineTooLong { max: MAX_LINE_LEN }));
    assert_eq!(err.code(), ErrorCode::Invalid);
    assert_eq!(buf.len(), MAX_LINE_LEN);
    // One short of the limit still waits for more.
    assert_eq!(decode_one(&long[..MAX_LINE_LEN - 1], &l).unwrap(), None);
    // A newline past the limit is the same error.
    let mut late = long.clone();
    late.push(b'\n');
    assert!(matches!(
        decode_one(&late, &l),
        Err(ProtoError::LineTooLong { .. })
    ));
}

#[test]
fn magic() {
    let mut buf = BytesMut::from(&b"  V"[..]);
    assert_eq!(decode_magic(&mut buf).unwrap(), None);
    buf.put_u8(b'2');
    buf.put_slice(b"NOP\n");
    assert_eq!(decode_magic(&mut buf).unwrap(), Some(()));
    assert_eq!(&buf[..], b"NOP\n");

    let mut buf = BytesMut::from(&b"  V1"[..]);
    let err = decode_magic(&mut buf).unwrap_err();
    let mut frame = BytesMut::new();
    encode_proto_error(&mut frame, &err);
    assert_eq!(&frame[8..], b"E_BAD_PROTOCOL");
}

#[test]
fn default_limits_are_nsqds() {
    let l = Limits::default();
    assert_eq!(l.max_msg_size, 1_048_576);
    assert_eq!(l.max_body_size, 5_242_880);
    assert_eq!(l.max_req_timeout_ms, 3_600_000);
    assert_eq!(l.max_rdy_count, 2500);
}
