#pragma once
// Pieces shared by the codec's translation units (codec.cpp, codec_writer.cpp,
// codec_decode.cpp); not part of the rooms API.
#include <string>
#include <string_view>

#include "runtime/rooms/codec.hpp"

namespace nshost::rooms::detail {

// Decodes the whole of `bytes` into `out`, tables nesting at most
// `max_depth` deep. False with `error` set ("msgpack: ..." / "json: ...").
bool decode_msgpack(std::string_view bytes, int max_depth, Value& out, std::string& error);
bool decode_json(std::string_view bytes, int max_depth, Value& out, std::string& error);

// True when `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace nshost::rooms::detail
