#include "runtime/transport/wire.hpp"

#include "runtime/core/byte_codec.hpp"

namespace nshost::wire {
namespace {

class Writer : public ByteWriter {
 public:
  void field(uint8_t tag, std::string_view value) {
    u8(tag);
    u32(static_cast<uint32_t>(value.size()));
    bytes(value);
  }
};

using Reader = ByteReader;

std::string u64_bytes(uint64_t v) {
  Writer w;
  w.u32(static_cast<uint32_t>(v >> 32));
  w.u32(static_cast<uint32_t>(v));
  return w.take();
}

bool read_u64(Reader& r, uint64_t& v) {
  uint32_t high, low;
  if (!r.u32(high) || !r.u32(low)) return false;
  v = (static_cast<uint64_t>(high) << 32) | low;
  return true;
}

// A TLV field holding exactly one u64, at most once per message.
bool read_count(std::string_view value, bool& seen, uint64_t& out, const char* name, std::string& error) {
  Reader r(value);
  if (seen || !read_u64(r, out) || !r.done()) {
    error = std::string("malformed ") + name + " field";
    return false;
  }
  seen = true;
  return true;
}

// A TLV text field of at most `max` bytes, at most once per message.
bool read_text(std::string_view value, size_t max, std::string& out, bool& seen, const char* name,
               std::string& error) {
  if (seen) {
    error = std::string("duplicate ") + name + " field";
    return false;
  }
  if (value.size() > max) {
    error = std::string(name) + " field of " + std::to_string(value.size()) + " bytes (at most " +
            std::to_string(max) + ")";
    return false;
  }
  seen = true;
  out.assign(value);
  return true;
}

constexpr size_t kMaxFields = 32;

// Walks TLV fields to the end of the message; `on_field` returns false to
// reject the message (with `error` set).
template <class OnField>
bool read_fields(Reader& r, std::string& error, OnField&& on_field) {
  size_t count = 0;
  while (!r.done()) {
    uint8_t tag;
    uint32_t length;
    std::string_view value;
    if (!r.u8(tag) || !r.u32(length)) {
      error = "truncated field header";
      return false;
    }
    if (!r.bytes(length, value)) {
      error = "field " + std::to_string(tag) + " claims " + std::to_string(length) + " bytes past the end";
      return false;
    }
    if (++count > kMaxFields) {
      error = "too many fields";
      return false;
    }
    if (!on_field(tag, value)) return false;
  }
  return true;
}

bool expect_type(Reader& r, ControlType type, std::string& error) {
  uint8_t t;
  if (!r.u8(t)) {
    error = "empty control message";
    return false;
  }
  if (t != static_cast<uint8_t>(type)) {
    error = "unexpected control message type " + std::to_string(t);
    return false;
  }
  return true;
}

bool read_token(std::string_view value, bool& seen, std::string& out, std::string& error) {
  if (seen) {
    error = "duplicate session token field";
    return false;
  }
  if (value.size() != kSessionTokenBytes) {
    error = "session token of " + std::to_string(value.size()) + " bytes (expected " +
            std::to_string(kSessionTokenBytes) + ")";
    return false;
  }
  seen = true;
  out.assign(value);
  return true;
}

}  // namespace

std::string encode_hello(const Hello& hello) {
  Writer w;
  w.u8(static_cast<uint8_t>(ControlType::hello));
  w.u32(kHelloMagic);
  w.u16(hello.protocol_version);
  if (!hello.handoff.empty()) w.field(kFieldHandoff, hello.handoff);
  if (!hello.session_token.empty()) {
    w.field(kFieldSessionToken, hello.session_token);
    w.field(kFieldReceived, u64_bytes(hello.received));
    w.field(kFieldReplayFloor, u64_bytes(hello.replay_floor));
  }
  if (!hello.codecs.empty()) w.field(kFieldCodecs, hello.codecs);
  if (!hello.project_id.empty()) w.field(kFieldProjectId, hello.project_id);
  if (!hello.auth_token.empty()) w.field(kFieldAuthToken, hello.auth_token);
  if (!hello.seat_token.empty()) w.field(kFieldSeatToken, hello.seat_token);
  return w.take();
}

std::string encode_welcome(const Welcome& welcome) {
  Writer w;
  w.u8(static_cast<uint8_t>(ControlType::welcome));
  w.u16(welcome.protocol_version);
  w.u16(welcome.slot);
  w.u16(welcome.max_clients);
  w.u16(welcome.tick_rate_hz);
  if (!welcome.script_hash.empty()) {
    w.field(kFieldScriptHash, welcome.script_hash);
    Writer size;
    size.u32(welcome.bundle_bytes);
    w.field(kFieldBundleBytes, size.take());
  }
  if (!welcome.session_token.empty()) w.field(kFieldSessionToken, welcome.session_token);
  if (welcome.resumed) {
    w.field(kFieldResumed, std::string_view("\x01", 1));
    w.field(kFieldReceived, u64_bytes(welcome.received));
  }
  if (!welcome.codec.empty()) w.field(kFieldCodec, welcome.codec);
  if (welcome.session_id != 0) w.field(kFieldSessionId, u64_bytes(welcome.session_id));
  if (welcome.server_tick != 0) w.field(kFieldServerTick, u64_bytes(welcome.server_tick));
  return w.take();
}

std::string encode_notice(const Notice& notice) {
  Writer w;
  w.u8(static_cast<uint8_t>(notice.type));
  std::string_view reason(notice.reason);
  if (reason.size() > kMaxReasonBytes) reason = reason.substr(0, kMaxReasonBytes);
  w.u8(static_cast<uint8_t>(reason.size()));
  w.bytes(reason);
  return w.take();
}

std::optional<ControlType> peek_type(std::string_view bytes) {
  if (bytes.empty()) return std::nullopt;
  auto t = static_cast<ControlType>(bytes[0]);
  switch (t) {
    case ControlType::hello:
    case ControlType::welcome:
    case ControlType::reject:
    case ControlType::kick:
    case ControlType::ack:
    case ControlType::clock:
    case ControlType::redirect:
    case ControlType::bundle_request:
    case ControlType::bundle_part:
      return t;
  }
  return std::nullopt;
}

bool decode_hello(std::string_view bytes, Hello& out, std::string& error) {
  Reader r(bytes);
  if (!expect_type(r, ControlType::hello, error)) return false;
  uint32_t magic;
  if (!r.u32(magic) || magic != kHelloMagic) {
    error = "not an nshost hello (bad magic)";
    return false;
  }
  if (!r.u16(out.protocol_version)) {
    error = "truncated hello";
    return false;
  }
  out.handoff.clear();
  out.session_token.clear();
  out.received = 0;
  out.replay_floor = 0;
  out.codecs.clear();
  out.project_id.clear();
  out.auth_token.clear();
  out.seat_token.clear();
  if (out.protocol_version != kProtocolVersion) return true;
  bool seen_handoff = false;
  bool seen_token = false, seen_received = false, seen_floor = false;
  bool seen_codecs = false, seen_project = false, seen_auth = false, seen_seat = false;
  return read_fields(r, error, [&](uint8_t tag, std::string_view value) {
    if (tag == kFieldSessionToken) return read_token(value, seen_token, out.session_token, error);
    if (tag == kFieldCodecs) return read_text(value, kMaxCodecsBytes, out.codecs, seen_codecs, "codecs", error);
    if (tag == kFieldProjectId) {
      return read_text(value, kMaxProjectIdBytes, out.project_id, seen_project, "project id", error);
    }
    if (tag == kFieldAuthToken) {
      return read_text(value, kMaxAuthTokenBytes, out.auth_token, seen_auth, "auth token", error);
    }
    if (tag == kFieldSeatToken) {
      return read_text(value, kMaxSeatTokenBytes, out.seat_token, seen_seat, "seat token", error);
    }
    if (tag == kFieldReceived) return read_count(value, seen_received, out.received, "received", error);
    if (tag == kFieldReplayFloor) return read_count(value, seen_floor, out.replay_floor, "replay floor", error);
    if (tag != kFieldHandoff) return true;  // unknown fields are skipped
    if (seen_handoff) {
      error = "duplicate handoff field";
      return false;
    }
    if (value.size() > kMaxHandoffBytes) {
      error = "handoff_too_large";
      return false;
    }
    seen_handoff = true;
    out.handoff.assign(value);
    return true;
  });
}

bool decode_welcome(std::string_view bytes, Welcome& out, std::string& error) {
  Reader r(bytes);
  if (!expect_type(r, ControlType::welcome, error)) return false;
  if (!r.u16(out.protocol_version) || !r.u16(out.slot) || !r.u16(out.max_clients) || !r.u16(out.tick_rate_hz)) {
    error = "truncated welcome";
    return false;
  }
  out.script_hash.clear();
  out.bundle_bytes = 0;
  out.session_token.clear();
  out.resumed = false;
  out.received = 0;
  out.codec.clear();
  out.session_id = 0;
  out.server_tick = 0;
  bool seen_size = false, seen_token = false, seen_resumed = false, seen_received = false;
  bool seen_codec = false, seen_session_id = false, seen_server_tick = false;
  bool ok = read_fields(r, error, [&](uint8_t tag, std::string_view value) {
    if (tag == kFieldSessionToken) return read_token(value, seen_token, out.session_token, error);
    if (tag == kFieldCodec) return read_text(value, kMaxCodecsBytes, out.codec, seen_codec, "codec", error);
    if (tag == kFieldSessionId) return read_count(value, seen_session_id, out.session_id, "session id", error);
    if (tag == kFieldReceived) return read_count(value, seen_received, out.received, "received", error);
    if (tag == kFieldServerTick)
      return read_count(value, seen_server_tick, out.server_tick, "server tick", error);
    if (tag == kFieldResumed) {
      if (seen_resumed || value.size() != 1 || static_cast<uint8_t>(value[0]) > 1) {
        error = "malformed resumed field";
        return false;
      }
      seen_resumed = true;
      out.resumed = value[0] == 1;
    } else if (tag == kFieldScriptHash) {
      if (value.size() != 32 || !out.script_hash.empty()) {
        error = "bad script hash field";
        return false;
      }
      out.script_hash.assign(value);
    } else if (tag == kFieldBundleBytes) {
      Reader size(value);
      if (seen_size || !size.u32(out.bundle_bytes) || !size.done()) {
        error = "bad bundle size field";
        return false;
      }
      seen_size = true;
    }
    return true;
  });
  if (ok && out.script_hash.empty() != !seen_size) {
    error = "script hash and bundle size come together";
    return false;
  }
  return ok;
}

std::string encode_redirect(const Redirect& redirect) {
  Writer w;
  w.u8(static_cast<uint8_t>(ControlType::redirect));
  w.field(kFieldUrl, redirect.url);
  if (!redirect.handoff.empty()) w.field(kFieldHandoff, redirect.handoff);
  return w.take();
}

std::string encode_bundle_request() {
  Writer w;
  w.u8(static_cast<uint8_t>(ControlType::bundle_request));
  return w.take();
}

std::string encode_bundle_part(uint32_t offset, std::string_view bytes) {
  Writer w;
  w.u8(static_cast<uint8_t>(ControlType::bundle_part));
  w.u32(offset);
  w.bytes(bytes);
  return w.take();
}

bool decode_redirect(std::string_view bytes, Redirect& out, std::string& error) {
  Reader r(bytes);
  if (!expect_type(r, ControlType::redirect, error)) return false;
  out = Redirect{};
  bool seen_url = false, seen_handoff = false;
  bool ok = read_fields(r, error, [&](uint8_t tag, std::string_view value) {
    if (tag == kFieldUrl) {
      if (seen_url || value.size() > kMaxUrlBytes) {
        error = seen_url ? "duplicate url field" : "url too long";
        return false;
      }
      seen_url = true;
      out.url.assign(value);
    } else if (tag == kFieldHandoff) {
      if (seen_handoff || value.size() > kMaxHandoffBytes) {
        error = seen_handoff ? "duplicate handoff field" : "handoff_too_large";
        return false;
      }
      seen_handoff = true;
      out.handoff.assign(value);
    }
    return true;
  });
  if (ok && !seen_url) {
    error = "redirect without a url";
    return false;
  }
  return ok;
}

bool decode_bundle_request(std::string_view bytes, std::string& error) {
  Reader r(bytes);
  if (!expect_type(r, ControlType::bundle_request, error)) return false;
  return read_fields(r, error, [](uint8_t, std::string_view) { return true; });
}

bool decode_bundle_part(std::string_view bytes, BundlePart& out, std::string& error) {
  Reader r(bytes);
  if (!expect_type(r, ControlType::bundle_part, error)) return false;
  if (!r.u32(out.offset)) {
    error = "truncated bundle part";
    return false;
  }
  out.bytes = bytes.substr(5);
  return true;
}

std::string encode_ack(uint64_t received) {
  Writer w;
  w.u8(static_cast<uint8_t>(ControlType::ack));
  w.bytes(u64_bytes(received));
  return w.take();
}

bool decode_ack(std::string_view bytes, uint64_t& received, std::string& error) {
  Reader r(bytes);
  if (!expect_type(r, ControlType::ack, error)) return false;
  if (!read_u64(r, received) || !r.done()) {
    error = "an ack is 9 bytes, got " + std::to_string(bytes.size());
    return false;
  }
  return true;
}

std::string encode_clock(uint64_t server_tick) {
  Writer w;
  w.u8(static_cast<uint8_t>(ControlType::clock));
  w.bytes(u64_bytes(server_tick));
  return w.take();
}

bool decode_clock(std::string_view bytes, uint64_t& server_tick, std::string& error) {
  Reader r(bytes);
  if (!expect_type(r, ControlType::clock, error)) return false;
  if (!read_u64(r, server_tick) || !r.done()) {
    error = "a clock is 9 bytes, got " + std::to_string(bytes.size());
    return false;
  }
  return true;
}

bool decode_notice(std::string_view bytes, Notice& out, std::string& error) {
  Reader r(bytes);
  uint8_t t;
  if (!r.u8(t) || (t != static_cast<uint8_t>(ControlType::reject) && t != static_cast<uint8_t>(ControlType::kick))) {
    error = "not a reject or kick message";
    return false;
  }
  out.type = static_cast<ControlType>(t);
  uint8_t length;
  std::string_view reason;
  if (!r.u8(length) || !r.bytes(length, reason) || !r.done()) {
    error = "malformed reason";
    return false;
  }
  out.reason.assign(reason);
  return true;
}

}  // namespace nshost::wire
