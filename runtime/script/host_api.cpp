#include "runtime/script/host_api.hpp"

namespace nshost {

const char* channel_name(Channel channel) { return channel == Channel::reliable ? "reliable" : "unreliable"; }

}  // namespace nshost
