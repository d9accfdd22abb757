#pragma once
// The handlers nshost calls, by the global table they live on. This is the
// one list: ScriptHost::invoke() and has_handler() take a HandlerName, which
// only a name listed here converts to (checked at compile time), and
// `nshost check` reports a function on a handler table whose name is not
// listed (runtime/check/checker.hpp). A new handler is added here first.
#include <span>
#include <string_view>

namespace nshost {

inline constexpr std::string_view kServerHandlers[] = {"connect", "disconnect", "lost",     "resumed",
                                                       "receive", "tick",       "shutdown", "auth",
                                                       "reload"};
inline constexpr std::string_view kClientHandlers[] = {"connect", "disconnect", "lost",         "resumed",
                                                       "receive", "tick",       "room_message", "room_left", "room_state",
                                                       "match_found", "match_failed"};
// A room's state (docs/rooms.md): the handlers on its global table `room`.
inline constexpr std::string_view kRoomHandlers[] = {"create", "join", "leave", "message", "tick", "dispose", "reload"};

struct HandlerTable {
  std::string_view table;  // the global the handlers are fields of
  std::span<const std::string_view> names;
};
inline constexpr HandlerTable kHandlerTables[] = {
    {"server", kServerHandlers},
    {"client", kClientHandlers},
    {"room", kRoomHandlers},
};

// The entry of kHandlerTables for `table`, or nullptr.
constexpr const HandlerTable* find_handler_table(std::string_view table) {
  for (const HandlerTable& t : kHandlerTables)
    if (t.table == table) return &t;
  return nullptr;
}

// Whether `name` is a handler of any table.
constexpr bool is_handler_name(std::string_view name) {
  for (const HandlerTable& t : kHandlerTables)
    for (std::string_view n : t.names)
      if (n == name) return true;
  return false;
}

// A handler's name as the host's code spells it: a string literal that must
// be in kHandlerTables (a name that is not fails to compile: "call to
// consteval function is not a constant expression").
class HandlerName {
 public:
  consteval HandlerName(const char* name) : name_(name) {
    if (!is_handler_name(name)) throw "not a handler nshost calls: list it in runtime/script/handler_names.hpp";
  }
  const char* c_str() const { return name_; }

 private:
  const char* name_;
};

}  // namespace nshost
