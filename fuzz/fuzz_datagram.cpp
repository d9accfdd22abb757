// libFuzzer target: the transport tap's check of raw UDP datagrams, which
// sees every byte that reaches a host's port before ENet does.
#include <cstdint>

#include "runtime/transport/socket_tap.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (size_t peers : {size_t{1}, size_t{96}, size_t{4095}}) (void)nshost::check_enet_datagram(data, size, peers);
  return 0;
}
