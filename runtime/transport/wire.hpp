#pragma once
// The nshost wire protocol on top of ENet: channel layout, control messages
// and their byte-exact codec. docs/protocol.md is the normative description.
// Decoders take untrusted bytes from the network: they never read out of
// bounds, never allocate more than the input implies, and report one readable
// error on anything malformed.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nshost::wire {

// Version 2 added reliable replay across a resume (ack, received counts).
constexpr uint16_t kProtocolVersion = 2;
constexpr uint32_t kHelloMagic = 0x4E534854;  // "NSHT"

// ENet channel ids. Data channels carry script bytes verbatim, no header.
constexpr uint8_t kChannelControl = 0;     // reliable, host control messages
constexpr uint8_t kChannelReliable = 1;    // reliable, ordered script data
constexpr uint8_t kChannelUnreliable = 2;  // unreliable, sequenced script data
// Rooms (seed 003): one catalog message per packet, encoded with the codec
// the handshake picked (runtime/rooms/codec.hpp). A peer that connected with
// fewer channels (an older client) has no rooms; its raw data still works.
constexpr uint8_t kChannelRoomReliable = 3;    // reliable, ordered catalog messages
constexpr uint8_t kChannelRoomUnreliable = 4;  // unreliable, sequenced catalog messages
constexpr uint8_t kChannelCount = 5;
// The fewest channels a peer may connect with (the layout before rooms).
constexpr uint8_t kChannelCountWithoutRooms = 3;

// Shard messages (hop, redirect, bundle fetch) are numbered from 16.
enum class ControlType : uint8_t {
  hello = 1,
  welcome = 2,
  reject = 3,
  kick = 4,
  ack = 5,  // either way: u64, reliable data messages received in this session
  clock = 6,  // server -> client: u64, the server's latest tick number (about once a second)
  redirect = 16,        // server -> client: go to url with handoff, then disconnect
  bundle_request = 17,  // client -> server: send me your script bundle
  bundle_part = 18,     // server -> client: u32 offset, then bundle bytes
};

// The 32-bit `data` of an ENet disconnect: why the sender closed the link.
enum class DisconnectCode : uint32_t {
  none = 0,
  leave = 1,
  shutdown = 2,
  rejected = 3,
  kicked = 4,
  hop = 16,         // the client leaves for another shard
  redirected = 17,  // the server sent the client to another shard
};

// Field tags inside hello and welcome (TLV: u8 tag, u32 length, bytes).
constexpr uint8_t kFieldHandoff = 1;       // hello, redirect
// Session resume (seed 002): hello carries the token of the session it
// resumes; welcome carries the token to resume this one with, and whether it
// resumed (docs/reliability.md).
constexpr uint8_t kFieldSessionToken = 8;  // hello, welcome: kSessionTokenBytes random bytes
constexpr uint8_t kFieldResumed = 9;       // welcome: one byte, 1 when the session resumed
// Reliable replay: how many reliable data messages of the session the sender
// of the hello (client) or welcome (server) has received, and (hello only)
// the count below which the client can no longer replay its own messages.
constexpr uint8_t kFieldReceived = 10;     // hello, welcome: u64
constexpr uint8_t kFieldReplayFloor = 11;  // hello: u64
// Seed 003's handshake, carried by hello and welcome (v is the protocol
// version, session_id the session token above): the codecs the client
// speaks, in order of preference, comma-separated ("msgpack,json"); the
// project it belongs to; an opaque token for server.auth. Welcome: the codec
// the server picked, absent when the hello offered none (no rooms then).
constexpr uint8_t kFieldCodecs = 12;     // hello: at most kMaxCodecsBytes
constexpr uint8_t kFieldProjectId = 13;  // hello: at most kMaxProjectIdBytes
constexpr uint8_t kFieldAuthToken = 14;  // hello: at most kMaxAuthTokenBytes
constexpr uint8_t kFieldCodec = 12;      // welcome: one codec name
constexpr uint8_t kFieldSessionId = 15;  // welcome: u64, the session id (c.id), never reused by this server
constexpr uint8_t kFieldScriptHash = 16;   // welcome: SHA-256 of the served bundle, 32 bytes
constexpr uint8_t kFieldBundleBytes = 17;  // welcome: size of that bundle, u32
constexpr uint8_t kFieldUrl = 18;          // redirect: nshost:// URL of the destination
constexpr uint8_t kFieldServerTick = 19;   // welcome: u64, the server's latest tick number
constexpr uint8_t kFieldSeatToken = 20;    // hello: a cluster seat token (docs/cluster.md), at most kMaxSeatTokenBytes
constexpr size_t kSessionTokenBytes = 16;

// Largest bundle_part payload a server sends (bytes of bundle per message).
constexpr size_t kBundlePartBytes = 32 * 1024;
constexpr size_t kMaxUrlBytes = 1024;

constexpr size_t kMaxHandoffBytes = 64 * 1024;
constexpr size_t kMaxReasonBytes = 255;
constexpr size_t kMaxCodecsBytes = 64;
constexpr size_t kMaxProjectIdBytes = 128;
constexpr size_t kMaxAuthTokenBytes = 4096;
constexpr size_t kMaxSeatTokenBytes = 64;

struct Hello {
  uint16_t protocol_version = kProtocolVersion;
  std::string handoff;  // opaque bytes for server.connect; "" on a fresh join
  std::string session_token;  // "" or kSessionTokenBytes: the session to resume
  // With a token: reliable data messages of that session the client has
  // received, and the count at or above which it can replay all it sent.
  uint64_t received = 0;
  uint64_t replay_floor = 0;
  std::string codecs;      // "" (no rooms) or e.g. "msgpack,json"
  std::string project_id;  // "" when absent
  std::string auth_token;  // "" when absent
  std::string seat_token;  // "" when absent: the seat another server of the cluster reserved
};

struct Welcome {
  uint16_t protocol_version = kProtocolVersion;
  uint16_t slot = 0;
  uint16_t max_clients = 0;
  uint16_t tick_rate_hz = 0;
  std::string script_hash;    // raw SHA-256 of the served bundle; "" if none
  uint32_t bundle_bytes = 0;  // its encoded size
  std::string session_token;  // "" or kSessionTokenBytes: resumes this session later
  bool resumed = false;       // true: the hello's token resumed its session
  uint64_t received = 0;      // when resumed: reliable data messages of the session the server has received
  std::string codec;          // "" when the hello offered none, else the picked codec's name
  uint64_t session_id = 0;    // 0 when absent (an older server)
  uint64_t server_tick = 0;   // the server's latest tick number; 0 when absent (an older server)
};

struct Redirect {
  std::string url;      // at most kMaxUrlBytes
  std::string handoff;  // at most kMaxHandoffBytes
};

struct BundlePart {
  uint32_t offset = 0;     // where `bytes` start in the bundle
  std::string_view bytes;  // views the decoded message
};

// reject and kick carry only a reason.
struct Notice {
  ControlType type = ControlType::reject;
  std::string reason;  // at most kMaxReasonBytes; longer reasons are cut
};

std::string encode_hello(const Hello& hello);
std::string encode_welcome(const Welcome& welcome);
std::string encode_notice(const Notice& notice);
std::string encode_redirect(const Redirect& redirect);
std::string encode_bundle_request();
std::string encode_bundle_part(uint32_t offset, std::string_view bytes);
std::string encode_ack(uint64_t received);

// The type byte of a control message, or nullopt for an empty or unknown one.
std::optional<ControlType> peek_type(std::string_view bytes);

// Decodes a hello. A hello from another protocol version decodes to `out`
// with only protocol_version set (its fields may have another layout), so the
// caller can refuse it by version. Returns false with `error` set when the
// bytes are not a hello at all or are malformed.
bool decode_hello(std::string_view bytes, Hello& out, std::string& error);
bool decode_welcome(std::string_view bytes, Welcome& out, std::string& error);
bool decode_notice(std::string_view bytes, Notice& out, std::string& error);
bool decode_redirect(std::string_view bytes, Redirect& out, std::string& error);
bool decode_bundle_request(std::string_view bytes, std::string& error);
bool decode_bundle_part(std::string_view bytes, BundlePart& out, std::string& error);
// An ack is exactly 9 bytes: the type and a u64 count.
bool decode_ack(std::string_view bytes, uint64_t& received, std::string& error);
// A clock is exactly 9 bytes: the type and the server's tick number (u64).
std::string encode_clock(uint64_t server_tick);
bool decode_clock(std::string_view bytes, uint64_t& server_tick, std::string& error);

}  // namespace nshost::wire
