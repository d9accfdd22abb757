#include <doctest/doctest.h>

#include "runtime/transport/wire.hpp"

using namespace nshost::wire;

TEST_CASE("wire: hello round-trips, with and without a handoff") {
  for (std::string handoff : {std::string(), std::string("name=ann\0x", 10), std::string(kMaxHandoffBytes, 'h')}) {
    Hello in;
    in.handoff = handoff;
    std::string bytes = encode_hello(in);
    Hello out;
    std::string error;
    REQUIRE_MESSAGE(decode_hello(bytes, out, error), error);
    CHECK(out.protocol_version == kProtocolVersion);
    CHECK(out.handoff == handoff);
  }
}

TEST_CASE("wire: hello layout is byte-exact as documented") {
  Hello in;
  in.handoff = "ab";
  std::string bytes = encode_hello(in);
  const unsigned char expected[] = {0x01, 'N', 'S', 'H', 'T', 0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x02, 'a', 'b'};
  CHECK(bytes == std::string(reinterpret_cast<const char*>(expected), sizeof expected));
}

TEST_CASE("wire: a hello of another version decodes only up to its version") {
  std::string bytes = encode_hello(Hello{7, ""}) + "anything at all";
  Hello out;
  std::string error;
  REQUIRE(decode_hello(bytes, out, error));
  CHECK(out.protocol_version == 7);
}

TEST_CASE("wire: malformed hellos are refused with a reason") {
  Hello out;
  std::string error;
  CHECK_FALSE(decode_hello("", out, error));
  CHECK_FALSE(decode_hello(std::string("\x01NSHX\x00\x01", 7), out, error));
  CHECK(error.find("magic") != std::string::npos);
  CHECK_FALSE(decode_hello(std::string("\x01NSHT\x00", 6), out, error));
  std::string good = encode_hello(Hello{kProtocolVersion, "abc"});
  // Truncate inside the handoff field.
  CHECK_FALSE(decode_hello(good.substr(0, good.size() - 1), out, error));
  CHECK(error.find("past the end") != std::string::npos);
  // A length field that claims 4 GiB.
  std::string huge = encode_hello(Hello{}) + std::string("\x01\xff\xff\xff\xff", 5);
  CHECK_FALSE(decode_hello(huge, out, error));
  // Duplicate handoff.
  std::string dup = good + std::string("\x01\x00\x00\x00\x00", 5);
  CHECK_FALSE(decode_hello(dup, out, error));
  CHECK(error == "duplicate handoff field");
  // Over the handoff limit.
  Hello big;
  big.handoff.assign(kMaxHandoffBytes + 1, 'x');
  CHECK_FALSE(decode_hello(encode_hello(big), out, error));
  CHECK(error == "handoff_too_large");
}

TEST_CASE("wire: unknown hello fields are skipped") {
  std::string bytes = encode_hello(Hello{kProtocolVersion, "h"}) + std::string("\x09\x00\x00\x00\x03xyz", 8);
  Hello out;
  std::string error;
  REQUIRE(decode_hello(bytes, out, error));
  CHECK(out.handoff == "h");
}

TEST_CASE("wire: welcome and notices round-trip - reasons are capped at 255 bytes") {
  Welcome w;
  w.slot = 4094;
  w.max_clients = 4095;
  w.tick_rate_hz = 1000;
  Welcome wo;
  std::string error;
  REQUIRE(decode_welcome(encode_welcome(w), wo, error));
  CHECK(wo.slot == 4094);
  CHECK(wo.max_clients == 4095);
  CHECK(wo.tick_rate_hz == 1000);
  CHECK(encode_welcome(w).size() == 9);

  Notice kick{ControlType::kick, std::string(300, 'r')};
  Notice out;
  REQUIRE(decode_notice(encode_notice(kick), out, error));
  CHECK(out.type == ControlType::kick);
  CHECK(out.reason.size() == kMaxReasonBytes);
  CHECK_FALSE(decode_notice(std::string("\x03\x05" "ab", 4), out, error));
  CHECK_FALSE(decode_notice(encode_welcome(w), out, error));
}

TEST_CASE("wire: peek_type knows only the defined control types") {
  CHECK(peek_type(encode_hello(Hello{})) == ControlType::hello);
  CHECK(peek_type(encode_notice(Notice{ControlType::reject, "x"})) == ControlType::reject);
  CHECK_FALSE(peek_type(""));
  CHECK_FALSE(peek_type("\x00"));
  CHECK_FALSE(peek_type("\x63"));
}

TEST_CASE("wire: a resuming hello carries the received count and replay floor, byte-exact") {
  Hello in;
  in.session_token = std::string(kSessionTokenBytes, '\x07');
  in.received = 0x0102030405060708ull;
  in.replay_floor = 3;
  std::string bytes = encode_hello(in);
  std::string expected("\x01NSHT\x00\x02", 7);
  expected += std::string("\x08\x00\x00\x00\x10", 5) + in.session_token;
  expected += std::string("\x0a\x00\x00\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08", 13);
  expected += std::string("\x0b\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x03", 13);
  CHECK(bytes == expected);
  Hello out;
  std::string error;
  REQUIRE_MESSAGE(decode_hello(bytes, out, error), error);
  CHECK(out.received == in.received);
  CHECK(out.replay_floor == 3);
  // A count field of the wrong size, or twice, is malformed.
  CHECK_FALSE(decode_hello(encode_hello(Hello{}) + std::string("\x0a\x00\x00\x00\x04\x00\x00\x00\x01", 9), out, error));
  CHECK(error == "malformed received field");
  CHECK_FALSE(decode_hello(bytes + std::string("\x0b\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x03", 13), out, error));
}

TEST_CASE("wire: a version 1 hello decodes to its version only, so the server refuses it by version") {
  std::string v1("\x01NSHT\x00\x01\x08\x00\x00\x00\x10", 12);
  v1 += std::string(kSessionTokenBytes, 'x');
  Hello out;
  std::string error;
  REQUIRE(decode_hello(v1, out, error));
  CHECK(out.protocol_version == 1);
  CHECK(out.protocol_version != kProtocolVersion);
  CHECK(out.session_token.empty());
}

TEST_CASE("wire: a resumed welcome carries the server's received count") {
  Welcome w;
  w.slot = 3;
  w.max_clients = 8;
  w.tick_rate_hz = 30;
  w.session_token = std::string(kSessionTokenBytes, 't');
  w.resumed = true;
  w.received = 2990;
  Welcome out;
  std::string error;
  REQUIRE_MESSAGE(decode_welcome(encode_welcome(w), out, error), error);
  CHECK(out.resumed);
  CHECK(out.received == 2990);
  w.resumed = false;
  REQUIRE(decode_welcome(encode_welcome(w), out, error));
  CHECK(out.received == 0);
}

TEST_CASE("wire: ack is 9 bytes, type 5 and a u64 count") {
  std::string bytes = encode_ack(0x1122334455667788ull);
  CHECK(bytes == std::string("\x05\x11\x22\x33\x44\x55\x66\x77\x88", 9));
  CHECK(peek_type(bytes) == ControlType::ack);
  uint64_t count = 0;
  std::string error;
  REQUIRE(decode_ack(bytes, count, error));
  CHECK(count == 0x1122334455667788ull);
  CHECK_FALSE(decode_ack(bytes.substr(0, 8), count, error));
  CHECK(error == "an ack is 9 bytes, got 8");
  CHECK_FALSE(decode_ack(bytes + "x", count, error));
  CHECK_FALSE(decode_ack(encode_bundle_request(), count, error));
}

TEST_CASE("wire: clock is 9 bytes, type 6 and the server's tick number (big-endian), the welcome carries it as field 19") {
  std::string bytes = encode_clock(0x0102030405060708ull);
  CHECK(bytes == std::string("\x06\x01\x02\x03\x04\x05\x06\x07\x08", 9));
  CHECK(peek_type(bytes) == ControlType::clock);
  uint64_t tick = 0;
  std::string error;
  REQUIRE(decode_clock(bytes, tick, error));
  CHECK(tick == 0x0102030405060708ull);
  CHECK_FALSE(decode_clock(bytes.substr(0, 5), tick, error));
  CHECK(error == "a clock is 9 bytes, got 5");
  CHECK_FALSE(decode_clock(encode_ack(1), tick, error));
  Welcome w;
  w.server_tick = 300;
  std::string welcome = encode_welcome(w);
  CHECK(welcome.substr(9) == std::string("\x13\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x01\x2c", 13));
  Welcome out;
  REQUIRE_MESSAGE(decode_welcome(welcome, out, error), error);
  CHECK(out.server_tick == 300);
  CHECK_FALSE(decode_welcome(welcome + welcome.substr(9), out, error));
  CHECK(error == "malformed server tick field");
}

TEST_CASE("wire: hello carries codecs, project id and auth token, each only when set") {
  Hello in;
  in.codecs = "msgpack,json";
  in.project_id = "proj-1";
  in.auth_token = std::string("tok\0en", 6);
  std::string bytes = encode_hello(in);
  std::string expected("\x01NSHT\x00\x02", 7);
  expected += std::string("\x0c\x00\x00\x00\x0c", 5) + "msgpack,json";
  expected += std::string("\x0d\x00\x00\x00\x06", 5) + "proj-1";
  expected += std::string("\x0e\x00\x00\x00\x06", 5) + in.auth_token;
  CHECK(bytes == expected);
  Hello out;
  std::string error;
  REQUIRE_MESSAGE(decode_hello(bytes, out, error), error);
  CHECK(out.codecs == "msgpack,json");
  CHECK(out.project_id == "proj-1");
  CHECK(out.auth_token == in.auth_token);
  // Unset fields are not sent, and a reused Hello is cleared by decoding.
  CHECK(encode_hello(Hello{}).size() == 7);
  REQUIRE(decode_hello(encode_hello(Hello{}), out, error));
  CHECK(out.codecs.empty());
  CHECK(out.project_id.empty());
  CHECK(out.auth_token.empty());
}

TEST_CASE("wire: hello text fields over their limits, or twice, are refused") {
  Hello out;
  std::string error;
  Hello in;
  in.codecs.assign(kMaxCodecsBytes, 'c');
  in.project_id.assign(kMaxProjectIdBytes, 'p');
  in.auth_token.assign(kMaxAuthTokenBytes, 't');
  REQUIRE_MESSAGE(decode_hello(encode_hello(in), out, error), error);
  CHECK(out.auth_token.size() == kMaxAuthTokenBytes);

  Hello big = in;
  big.codecs += 'c';
  CHECK_FALSE(decode_hello(encode_hello(big), out, error));
  CHECK(error == "codecs field of 65 bytes (at most 64)");
  big = in;
  big.project_id += 'p';
  CHECK_FALSE(decode_hello(encode_hello(big), out, error));
  CHECK(error == "project id field of 129 bytes (at most 128)");
  big = in;
  big.auth_token += 't';
  CHECK_FALSE(decode_hello(encode_hello(big), out, error));
  CHECK(error == "auth token field of 4097 bytes (at most 4096)");
  CHECK_FALSE(decode_hello(encode_hello(in) + std::string("\x0c\x00\x00\x00\x04json", 9), out, error));
  CHECK(error == "duplicate codecs field");
}

TEST_CASE("wire: welcome carries the picked codec and the session id, each only when set") {
  Welcome w;
  w.slot = 1;
  w.codec = "json";
  w.session_id = 0x0102030405060708ull;
  std::string bytes = encode_welcome(w);
  std::string expected("\x02\x00\x02\x00\x01\x00\x00\x00\x00", 9);
  expected += std::string("\x0c\x00\x00\x00\x04", 5) + "json";
  expected += std::string("\x0f\x00\x00\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08", 13);
  CHECK(bytes == expected);
  Welcome out;
  std::string error;
  REQUIRE_MESSAGE(decode_welcome(bytes, out, error), error);
  CHECK(out.codec == "json");
  CHECK(out.session_id == w.session_id);
  REQUIRE(decode_welcome(encode_welcome(Welcome{}), out, error));
  CHECK(out.codec.empty());
  CHECK(out.session_id == 0);
  CHECK(encode_welcome(Welcome{}).size() == 9);
  // A session id that is not 8 bytes, a codec name over the codecs limit.
  CHECK_FALSE(decode_welcome(encode_welcome(Welcome{}) + std::string("\x0f\x00\x00\x00\x04\x00\x00\x00\x01", 9), out,
                             error));
  CHECK(error == "malformed session id field");
  Welcome long_codec;
  long_codec.codec.assign(kMaxCodecsBytes + 1, 'x');
  CHECK_FALSE(decode_welcome(encode_welcome(long_codec), out, error));
}
