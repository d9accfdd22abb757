// --watch: the server reloads its script tree when a file in it changes
// (docs/operations.md "Hot reload"). The watcher reports from a timer
// callback on the loop, so a reload never runs inside a handler or a tick.
#include <cstdio>
#include <map>

#include "runtime/core/log.hpp"
#include "runtime/ops/reload.hpp"
#include "runtime/roles/server_role.hpp"
#include "runtime/script/bundle.hpp"
#include "runtime/rooms/room_manager.hpp"

namespace nshost {
namespace {

std::string directory_of_script(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string format_ms(int64_t ns) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", static_cast<double>(ns) / 1e6);
  return text;
}

}  // namespace

bool ServerRole::start_watch(std::string& error) {
  watcher_ = std::make_unique<ops::ScriptWatcher>(loop_, directory_of_script(options_.script), kMaxBundleDepth,
                                                  [this](size_t files) { reload_scripts(files); });
  if (!watcher_->start(error)) {
    error = "nshost: --watch: " + error;
    return false;
  }
  log_write(LogLevel::info, "server",
            "reload: watching " + std::to_string(watcher_->watched_directories()) + " director" +
                (watcher_->watched_directories() == 1 ? "y" : "ies") + " for script edits");
  return true;
}

void ServerRole::reload_scripts(size_t files_changed) {
  if (stopping_ || finished_ || !script_) return;
  int64_t start_ns = monotonic_ns();
  std::string error;
  if (rooms_) rooms_->begin_redefinitions();
  bool ok = script_->reload(error);
  if (rooms_) {
    if (ok) rooms_->commit_redefinitions();
    else rooms_->abort_redefinitions();
  }
  if (ok) {
    // The new handlers are live; the script migrates its data before any
    // event reaches them. An error here is logged as a handler's: the
    // reload stands.
    uint64_t old_version = script_->code_version() - 1;
    script_->invoke("reload", [old_version](lua_State* L) {
      lua_pushinteger(L, static_cast<lua_Integer>(old_version));
      return 1;
    });
  }
  // Each room judges its own file, whatever became of the main script's.
  size_t rooms_reloaded = 0;
  std::map<std::string, size_t> rooms_rejected;
  if (rooms_) rooms_reloaded = rooms_->reload_rooms(rooms_rejected);
  // Shards fetch the tree that is live: a rejected edit is not served.
  if (ok) prepare_bundle();
  std::string took = format_ms(monotonic_ns() - start_ns);
  std::string files = std::to_string(files_changed) + (files_changed == 1 ? " file" : " files") + " changed";
  std::string rooms_note;
  if (rooms_reloaded > 0) rooms_note = "; " + std::to_string(rooms_reloaded) + " room(s) reloaded";
  if (ok)
    log_write(LogLevel::info, "server",
              "reload: v" + std::to_string(script_->code_version()) + " live (" + files + ", " + took + rooms_note + ")");
  else
    log_write(LogLevel::error, "server", "reload: rejected: " + error);
  for (const auto& [room_error, count] : rooms_rejected)
    log_write(LogLevel::error, "server",
              "reload: rejected in " + std::to_string(count) + " room(s), which keep their code: " + room_error);
}

}  // namespace nshost
