// The socket tap's connect challenge (docs/protocol.md "Connect challenge"):
// a server answers a CONNECT without a valid cookie with a challenge and
// admits only one that comes back with it; a client appends the cookie a
// challenge gave it to its CONNECT. Declared in socket_tap.hpp.
#include <enet/protocol.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>

#include <cstring>
#include <stdexcept>

#include "runtime/core/uv_handle.hpp"
#include "runtime/transport/socket_tap.hpp"

namespace nshost {

void SocketTap::enable_connect_challenge() {
  size_t filled = 0;
  while (filled < sizeof secret_) {
    ssize_t n = getrandom(secret_ + filled, sizeof secret_ - filled, 0);
    if (n < 0) throw std::runtime_error("getrandom failed");
    filled += static_cast<size_t>(n);
  }
  challenge_ = true;
}

std::string SocketTap::cookie_for(const ENetAddress& from, int64_t now_ns) const {
  uint8_t message[14];
  std::memcpy(message, &from.host, 4);  // network order, as on the wire
  message[4] = static_cast<uint8_t>(from.port >> 8);
  message[5] = static_cast<uint8_t>(from.port);
  uint64_t bucket = static_cast<uint64_t>(now_ns / kCookieBucketNs);
  for (int i = 0; i < 8; ++i) message[6 + i] = static_cast<uint8_t>(bucket >> (56 - 8 * i));
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_length = 0;
  if (!HMAC(EVP_sha256(), secret_, sizeof secret_, message, sizeof message, mac, &mac_length) ||
      mac_length < kCookieBytes)
    throw std::runtime_error("libcrypto: HMAC-SHA256 failed");
  return std::string(reinterpret_cast<char*>(mac), kCookieBytes);
}

bool SocketTap::cookie_valid(const uint8_t* data, size_t length, const ENetAddress& from) const {
  size_t at = datagram_connect_offset(data, length);
  if (at == 0 || length < at + sizeof(ENetProtocolConnect) + kTrailerBytes) return false;
  if (std::memcmp(data + length - 4, kTrailerMagic, 4) != 0) return false;
  const uint8_t* cookie = data + length - kTrailerBytes;
  int64_t now = monotonic_ns();
  for (int64_t when : {now, now - kCookieBucketNs}) {
    std::string expected = cookie_for(from, when);
    if (CRYPTO_memcmp(cookie, expected.data(), kCookieBytes) == 0) return true;
  }
  return false;
}

void SocketTap::send_datagram(const ENetAddress& to, const std::string& bytes) {
  ENetBuffer buffer;
  buffer.data = const_cast<char*>(bytes.data());
  buffer.dataLength = bytes.size();
  on_send(&to, &buffer, 1);
}

void SocketTap::note_connect(const ENetAddress& to, std::string& bytes) {
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  if (datagram_connect_offset(data, bytes.size()) == 0) return;
  if (dialled_.size() >= 64 && !dialled_.count(datagram_address_key(to))) dialled_.clear();
  Dialled& d = dialled_[datagram_address_key(to)];
  d.connect = bytes;
  if (!d.cookie.empty()) {
    bytes += d.cookie;
    bytes.append(reinterpret_cast<const char*>(kTrailerMagic), 4);
  }
}

void SocketTap::answer_challenge(const uint8_t* data, const ENetAddress& from) {
  auto it = dialled_.find(datagram_address_key(from));
  if (it == dialled_.end() || it->second.connect.empty()) return;
  Dialled& d = it->second;
  const auto* sent = reinterpret_cast<const uint8_t*>(d.connect.data());
  size_t at = datagram_connect_offset(sent, d.connect.size());
  // Only the challenge to the connect we sent last: not one an off-path
  // sender made up to make us send.
  if (std::memcmp(sent + at + offsetof(ENetProtocolConnect, connectID), data + 4, 4) != 0) return;
  d.cookie.assign(reinterpret_cast<const char*>(data) + 8, kCookieBytes);
  ++stats_.challenges_answered;
  std::string resend = d.connect;
  send_datagram(from, resend);
}

bool SocketTap::admit(const uint8_t* data, size_t& length, const ENetAddress& from) {
  if (probe_.armed) {
    // During the start-up check ENet sees nothing: the probe is taken here,
    // and anything else (the port may already be in use by peers) is dropped
    // as if it had come before the socket was watched.
    if (datagram_same_address(from, probe_.self) && length == probe_.bytes.size() &&
        std::memcmp(data, probe_.bytes.data(), length) == 0)
      probe_.received = true;
    return false;
  }
  ++stats_.datagrams_in;
  if (length == kChallengeBytes && std::memcmp(data, kChallengeMagic, 4) == 0) {
    if (challenge_) count_malformed(from);
    else answer_challenge(data, from);
    return false;
  }
  if (check_enet_datagram(data, length, peer_count_) == DatagramVerdict::ok) {
    // check_enet_datagram passed it, so a peer-less datagram is a connect.
    bool connect = datagram_peerless(data, length);
    if (connect && challenge_) {
      size_t at = datagram_connect_offset(data, length);
      if (at == 0) {
        count_malformed(from);
        return false;
      }
      if (!cookie_valid(data, length, from)) {
        // Smaller than the CONNECT it answers: no amplification.
        std::string challenge(reinterpret_cast<const char*>(kChallengeMagic), 4);
        challenge.append(reinterpret_cast<const char*>(data + at + offsetof(ENetProtocolConnect, connectID)), 4);
        challenge += cookie_for(from, monotonic_ns());
        ++stats_.challenges_sent;
        send_datagram(from, challenge);
        return false;
      }
      length -= kTrailerBytes;
    }
    if (connect && connect_filter_ && !connect_filter_(from)) {
      ++stats_.refused_connects;
      return false;
    }
    return true;
  }
  count_malformed(from);
  return false;
}

}  // namespace nshost
