//! Decoder and encoder tests, including byte-at-a-time and garbage input.

use bytes::{BufMut, BytesMut};

use super::chunked::MAX_CHUNK_LINE;
use super::*;

fn buf(bytes: &[u8]) -> BytesMut {
    BytesMut::from(bytes)
}

fn decode_all(input: &[u8], max_body: usize) -> Result<Vec<Request>, HttpError> {
    let mut b = buf(input);
    let mut out = Vec::new();
    while let Some(req) = decode_request(&mut b, max_body)? {
        out.push(req);
    }
    Ok(out)
}

#[test]
fn simple_get() {
    let mut b = buf(b"GET /stats?format=json HTTP/1.1\r\nHost: x\r\n\r\n");
    let req = decode_request(&mut b, 1024).unwrap().unwrap();
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/stats");
    assert_eq!(req.raw_query, "format=json");
    assert_eq!(req.query_get("format"), Some("json"));
    assert!(req.keep_alive);
    assert!(req.body.is_empty());
    assert_eq!(req.header("HOST"), Some(&b"x"[..]));
    assert!(b.is_empty());
}

#[test]
fn pipelined_requests_come_out_in_order() {
    let input = b"POST /pub?topic=a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /ping HTTP/1.1\r\nHost: x\r\n\r\nPOST /pub?topic=b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    let reqs = decode_all(input, 1024).unwrap();
    assert_eq!(reqs.len(), 3);
    assert_eq!(&reqs[0].body[..], b"hello");
    assert_eq!(reqs[1].path, "/ping");
    assert_eq!(reqs[2].query_get("topic"), Some("b"));
    assert_eq!(&reqs[2].body[..], b"abc");
}

#[test]
fn byte_at_a_time_matches_whole() {
    let input: &[u8] = b"POST /mpub?topic=t&binary=false HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\na\nb\nc\n\
POST /pub?topic=t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n";
    let whole = decode_all(input, 1024).unwrap();
    assert_eq!(whole.len(), 2);
    let mut b = BytesMut::new();
    let mut got = Vec::new();
    for &byte in input {
        b.put_u8(byte);
        while let Some(req) = decode_request(&mut b, 1024).unwrap() {
            got.push(req);
        }
    }
    assert_eq!(got, whole);
    assert!(b.is_empty());
}

#[test]
fn every_split_point_gives_the_same_request() {
    let input: &[u8] =
        b"PUT /config/log_level HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfatal";
    let whole = decode_all(input, 64).unwrap();
    for split in 0..input.len() {
        let mut b = buf(&input[..split]);
        assert_eq!(decode_request(&mut b, 64).unwrap(), None, "split {split}");
        assert_eq!(b.len(), split, "nothing consumed on Ok(None)");
        b.put_slice(&input[split..]);
        let req = decode_request(&mut b, 64).unwrap().unwrap();
        assert_eq!(req, whole[0]);
        assert!(!req.keep_alive);
    }
}

#[test]
fn chunked_body_is_reassembled() {
    let mut b = buf(b"POST /pub?topic=t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nContent-Length: 99\r\n\r\n4\r\nWiki\r\n5 \r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nNEXT");
    let req = decode_request(&mut b, 1024).unwrap().unwrap();
    assert_eq!(&req.body[..], b"Wikipedia in\r\n\r\nchunks.");
    assert_eq!(&b[..], b"NEXT");
}

#[test]
fn chunked_errors() {
    let bad_size = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    assert!(matches!(
        decode_request(&mut buf(bad_size), 1024),
        Err(HttpError::BadRequest(_))
    ));
    let bad_crlf = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY";
    assert!(matches!(
        decode_request(&mut buf(bad_crlf), 1024),
        Err(HttpError::BadRequest(_))
    ));
    let too_big =
        b"POST /mpub HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n";
    assert!(matches!(
        decode_request(&mut buf(too_big), 10),
        Err(HttpError::BodyTooLarge { ref path, limit: 10, .. }) if path == "/mpub"
    ));
    let huge =
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n";
    assert!(matches!(
        decode_request(&mut buf(huge), usize::MAX),
        Err(HttpError::BodyTooLarge { .. })
    ));
    let long_line = [
        &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;"[..],
        &[b'x'; MAX_CHUNK_LINE],
    ]
    .concat();
    assert!(matches!(
        decode_request(&mut buf(&long_line), 1024),
        Err(HttpError::BadRequest(_))
    ));
}

#[test]
fn transfer_encoding_rules() {
    let gzip = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(
        decode_request(&mut buf(gzip), 1024),
        Err(HttpError::UnsupportedTransferEncoding)
    );
    // HTTP/1.0 ignores Transfer-Encoding and uses Content-Length.
    let old = b"POST /pub HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\nhi";
    let req = decode_request(&mut buf(old), 1024).unwrap().unwrap();
    assert_eq!(&req.body[..], b"hi");
}

#[test]
fn content_length_rules() {
    for bad in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1,1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ] {
        assert!(
            matches!(
                decode_request(&mut buf(bad), 1024),
                Err(HttpError::BadRequest(_))
            ),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let same_twice =
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx";
    assert!(decode_request(&mut buf(same_twice), 1024)
        .unwrap()
        .is_some());
    // The limit is enforced from the header, before the body arrives.
    let big = b"POST /pub?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n";
    assert_eq!(
        decode_request(&mut buf(big), 1024),
        Err(HttpError::BodyTooLarge {
            method: "POST".into(),
            path: "/pub".into(),
            limit: 1024
        })
    );
}

#[test]
fn expect_continue() {
    let head = b"POST /mpub?topic=t HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    assert!(!needs_continue(&head[..head.len() - 1]));
    let mut b = buf(head);
    assert_eq!(decode_request(&mut b, 1024).unwrap(), None);
    assert!(needs_continue(&b));
    b.put_u8(b'a');
    assert!(!needs_continue(&b), "body already started");
    b.put_slice(b"bc");
    let req = decode_request(&mut b, 1024).unwrap().unwrap();
    assert_eq!(&req.body[..], b"abc");

    let chunked =
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-Continue\r\n\r\n";
    assert!(needs_continue(chunked));
    let empty = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n";
    assert!(!needs_continue(empty));
    let http10 = b"POST / HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    assert!(!needs_continue(http10));
    let other = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: something\r\n\r\n";
    assert!(!needs_continue(other));
    assert_eq!(
        decode_request(&mut buf(other), 1024),
        Err(HttpError::ExpectationFailed)
    );
}

#[test]
fn keep_alive_rules() {
    let cases: [(&[u8], bool); 5] = [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, close\r\n\r\n",
            false,
        ),
    ];
    for (input, keep_alive) in cases {
        let req = decode_request(&mut buf(input), 0).unwrap().unwrap();
        assert_eq!(
            req.keep_alive,
            keep_alive,
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn query_and_path_decoding() {
    let input =
        b"GET /a%2Fb+c?topic=a%2Fb&msg=hello+world&flag&empty=&x=1&x=2&&t%41g=%41 HTTP/1.1\r\nHost: x\r\n\r\n";
    let req = decode_request(&mut buf(input), 0).unwrap().unwrap();
    assert_eq!(req.path, "/a/b+c");
    assert_eq!(req.query_get("topic"), Some("a/b"));
    assert_eq!(req.query_get("msg"), Some("hello world"));
    assert_eq!(req.query_get("flag"), Some(""));
    assert!(req.query_has("empty"));
    assert!(!req.query_has("missing"));
    assert_eq!(req.query_get("x"), Some("1"));
    assert_eq!(req.query_get("tAg"), Some("A"));
    assert!(!req.query_error);

    let bad = b"GET /stats?topic=%zz&format=json HTTP/1.1\r\nHost: x\r\n\r\n";
    let req = decode_request(&mut buf(bad), 0).unwrap().unwrap();
    assert!(req.query_error);
    assert_eq!(req.query_get("format"), Some("json"));
    assert!(!req.query_has("topic"));

    let semi = b"GET /stats?a=1;b=2&c=3 HTTP/1.1\r\nHost: x\r\n\r\n";
    let req = decode_request(&mut buf(semi), 0).unwrap().unwrap();
    assert!(req.query_error);
    assert_eq!(req.query, vec![("c".to_owned(), "3".to_owned())]);

    let bad_path = b"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(matches!(
        decode_request(&mut buf(bad_path), 0),
        Err(HttpError::BadRequest(_))
    ));
}

#[test]
fn request_target_forms() {
    let absolute = b"GET http://127.0.0.1:4151/ping?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    let req = decode_request(&mut buf(absolute), 0).unwrap().unwrap();
    assert_eq!(req.path, "/ping");
    assert_eq!(req.query_get("x"), Some("1"));
    let star = b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(
        decode_request(&mut buf(star), 0).unwrap().unwrap().path,
        "*"
    );
    let relative = b"GET ping HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(matches!(
        decode_request(&mut buf(relative), 0),
        Err(HttpError::BadRequest(_))
    ));
}

#[test]
fn nsq_magic_is_rejected_at_once() {
    for input in [
        &b"  V2"[..],
        b" ",
        b"  V2IDENTIFY\n",
        b"/pub HTTP/1.1\r\nHost: x\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ] {
        assert!(
            matches!(
                decode_request(&mut buf(input), 0),
                Err(HttpError::BadRequest(_))
            ),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    let mut out = BytesMut::new();
    encode_error(&mut out, &HttpError::BadRequest("x"));
    assert_eq!(
        &out[..],
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
    );
}

#[test]
fn header_section_limit() {
    let mut input = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
    input.resize(MAX_HEADER_BYTES + 1, b'a');
    assert_eq!(
        decode_request(&mut buf(&input), 0),
        Err(HttpError::HeaderTooLarge)
    );
    input.truncate(MAX_HEADER_BYTES - 10);
    assert_eq!(decode_request(&mut buf(&input), 0), Ok(None));
    let mut out = BytesMut::new();
    encode_error(&mut out, &HttpError::HeaderTooLarge);
    assert!(out.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
}

#[test]
fn many_headers_are_accepted() {
    let mut input = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..500 {
        input.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    let req = decode_request(&mut buf(&input), 0).unwrap().unwrap();
    assert_eq!(req.headers.len(), 501);
}

#[test]
fn body_is_zero_copy_view_of_the_buffer() {
    let mut b = buf(b"POST /pub HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
    let start = b.as_ptr() as usize;
    let req = decode_request(&mut b, 16).unwrap().unwrap();
    let offset = req.body.as_ptr() as usize - start;
    assert_eq!(
        offset,
        b"POST /pub HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n".len()
    );
}

#[test]
fn encode_response_bytes() {
    let mut out = BytesMut::new();
    encode_response(
        &mut out,
        200,
        Some("text/plain; charset=utf-8"),
        b"OK",
        true,
    );
    assert_eq!(
        &out[..],
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nOK"
    );
    out.clear();
    encode_response(&mut out, 404, None, b"", false);
    assert_eq!(
        &out[..],
        b"HTTP/1.1 404 Not Found\r\nX-Nsq-Content-Type: nsq; version=1.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    out.clear();
    encode_response(&mut out, 599, None, b"", true);
    assert!(out.starts_with(b"HTTP/1.1 599 status code 599\r\n"));
}

#[test]
fn garbage_never_panics() {
    // Deterministic xorshift so failures reproduce.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"GET POST / ?&=%+;:\r\n0123456789abcdefxyzHTTP/1.Content-LengthTransfer-Encodingchunked\t ";
    for _ in 0..20_000 {
        let len = (next() % 200) as usize;
        let mut input: Vec<u8> = if next() % 2 == 0 {
            b"POST /pub?topic=t HTTP/1.1\r\nHost: x\r\n".to_vec()
        } else {
            Vec::new()
        };
        for _ in 0..len {
            let r = next();
            input.push(if r % 5 == 0 {
                (r >> 8) as u8
            } else {
                alphabet[(r >> 8) as usize % alphabet.len()]
            });
        }
        let mut b = buf(&input);
        for _ in 0..4 {
            match decode_request(&mut b, 64) {
                Ok(Some(_)) => continue,
                _ => break,
            }
        }
        let _ = needs_continue(&input);
    }
}

#[test]
fn host_header_rules_follow_go() {
    // HTTP/1.1 needs exactly one well-formed Host (RFC 9112 §3.2).
    let missing = b"GET /ping HTTP/1.1\r\n\r\n";
    assert_eq!(
        decode_all(missing, 0).unwrap_err(),
        HttpError::BadHost("missing required Host header")
    );
    let twice = b"GET /ping HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n";
    assert_eq!(decode_all(twice, 0).unwrap_err().status(), 400);
    let malformed = b"GET /ping HTTP/1.1\r\nHost: a b\r\n\r\n";
    assert_eq!(
        decode_all(malformed, 0).unwrap_err(),
        HttpError::BadHost("malformed Host header")
    );
    // HTTP/1.0 may leave it out, but not send two.
    assert_eq!(
        decode_all(b"GET /ping HTTP/1.0\r\n\r\n", 0).unwrap().len(),
        1
    );
    let twice_10 = b"GET /ping HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n";
    assert_eq!(decode_all(twice_10, 0).unwrap_err().status(), 400);
    // An empty Host, ports and IPv6 literals are fine.
    for ok in [
        &b"GET / HTTP/1.1\r\nHost:\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:4151\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1]:4151\r\n\r\n",
    ] {
        assert_eq!(
            decode_all(ok, 0).unwrap().len(),
            1,
            "{:?}",
            String::from_utf8_lossy(ok)
        );
    }
}

#[test]
fn host_errors_are_encoded_as_go_does() {
    let mut out = BytesMut::new();
    encode_error(
        &mut out,
        &HttpError::BadHost("missing required Host header"),
    );
    assert_eq!(
        &out[..],
        &b"HTTP/1.1 400 Bad Request: missing required Host header\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request: missing required Host header"[..]
    );
    let mut out = BytesMut::new();
    encode_error(&mut out, &HttpError::BadRequest("too many Host headers"));
    assert!(out.ends_with(b"\r\n\r\n400 Bad Request"));
}
