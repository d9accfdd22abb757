// libFuzzer target: the welcome decoder a client runs on the server's reply.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/transport/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  nshost::wire::Welcome welcome;
  std::string error;
  if (!nshost::wire::decode_welcome(bytes, welcome, error)) {
    if (error.empty()) std::abort();
    return 0;
  }
  if (!welcome.session_token.empty() && welcome.session_token.size() != nshost::wire::kSessionTokenBytes)
    std::abort();
  nshost::wire::Welcome again;
  if (!nshost::wire::decode_welcome(nshost::wire::encode_welcome(welcome), again, error)) std::abort();
  if (again.slot != welcome.slot || again.session_token != welcome.session_token || again.resumed != welcome.resumed)
    std::abort();
  if (welcome.resumed && again.received != welcome.received) std::abort();
  if (again.codec != welcome.codec || again.session_id != welcome.session_id) std::abort();
  return 0;
}
