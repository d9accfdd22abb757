// libFuzzer target: the reject/kick notice and ack decoders, and peek_type,
// which the server and client run first on every control message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/transport/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  (void)nshost::wire::peek_type(bytes);
  std::string error;
  uint64_t count = 0;
  if (nshost::wire::decode_ack(bytes, count, error)) {
    uint64_t again = 0;
    if (!nshost::wire::decode_ack(nshost::wire::encode_ack(count), again, error) || again != count) std::abort();
  } else if (error.empty()) {
    std::abort();
  }
  error.clear();
  nshost::wire::Notice notice;
  if (!nshost::wire::decode_notice(bytes, notice, error)) {
    if (error.empty()) std::abort();
    return 0;
  }
  if (notice.reason.size() > nshost::wire::kMaxReasonBytes) std::abort();
  nshost::wire::Notice again;
  if (!nshost::wire::decode_notice(nshost::wire::encode_notice(notice), again, error)) std::abort();
  if (again.reason != notice.reason || again.type != notice.type) std::abort();
  return 0;
}
