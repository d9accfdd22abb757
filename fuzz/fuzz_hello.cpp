// libFuzzer target: the hello decoder (handshake, its handoff and session
// token fields, a resume's received count and replay floor), fed raw bytes
// as they arrive on the control channel.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/transport/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  nshost::wire::Hello hello;
  std::string error;
  if (!nshost::wire::decode_hello(bytes, hello, error)) {
    if (error.empty()) std::abort();  // every refusal names its reason
    return 0;
  }
  if (hello.handoff.size() > nshost::wire::kMaxHandoffBytes) std::abort();
  if (!hello.session_token.empty() && hello.session_token.size() != nshost::wire::kSessionTokenBytes) std::abort();
  if (hello.protocol_version != nshost::wire::kProtocolVersion) return 0;
  // What decodes re-encodes to something that decodes to the same hello.
  nshost::wire::Hello again;
  if (!nshost::wire::decode_hello(nshost::wire::encode_hello(hello), again, error)) std::abort();
  if (again.handoff != hello.handoff || again.session_token != hello.session_token) std::abort();
  if (hello.codecs.size() > nshost::wire::kMaxCodecsBytes || hello.project_id.size() > nshost::wire::kMaxProjectIdBytes ||
      hello.auth_token.size() > nshost::wire::kMaxAuthTokenBytes)
    std::abort();
  if (again.codecs != hello.codecs || again.project_id != hello.project_id || again.auth_token != hello.auth_token)
    std::abort();
  // The counts travel with a token (a resume) only.
  if (!hello.session_token.empty() && (again.received != hello.received || again.replay_floor != hello.replay_floor))
    std::abort();
  return 0;
}
