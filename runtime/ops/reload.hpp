#pragma once
// --watch: watches a script tree for edits with libuv fs events and reports
// them, debounced, on the loop (docs/operations.md "Hot reload"). Linux has
// no recursive watch, so every directory of the tree is watched on its own
// (names starting with '.' skipped, at most `max_depth` levels: the server
// passes the bundle's, so the watched tree is the served one); the set is
// brought in line with the tree after each report, so a directory created
// later is watched from then on. Nothing here includes the script layer.
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "runtime/core/uv_handle.hpp"

namespace nshost::ops {

class ScriptWatcher {
 public:
  // A burst of events closer together than this is one change: an editor's
  // save (write a temporary, rename it over the file) reports once.
  static constexpr uint32_t kDefaultDebounceMs = 100;
  // Directories watched at most (one inotify watch each); past it the rest
  // of the tree is not watched and a warning says so once.
  static constexpr size_t kMaxWatchedDirectories = 256;

  // `files_changed`: distinct *.lua paths the burst touched (at least 1).
  using OnChange = std::function<void(size_t files_changed)>;

  // `root`: the directory of the entry script; `max_depth`: directory
  // levels below it that are watched. `on_change` runs on the loop, from a
  // timer callback (never inside another callback of the caller's).
  ScriptWatcher(uv_loop_t* loop, std::string root, size_t max_depth, OnChange on_change,
                uint32_t debounce_ms = kDefaultDebounceMs, size_t max_directories = kMaxWatchedDirectories);
  ~ScriptWatcher();
  ScriptWatcher(const ScriptWatcher&) = delete;
  ScriptWatcher& operator=(const ScriptWatcher&) = delete;

  // Starts watching the tree. False with `error` (one line) when the root
  // cannot be watched.
  bool start(std::string& error);
  size_t watched_directories() const { return watches_.size(); }

 private:
  struct Watch;
  static void on_event(uv_fs_event_t* handle, const char* filename, int events, int status);
  void note(const std::string& directory, const char* filename);
  void fire();
  // Watches every directory of the tree not watched yet, drops the watches
  // of directories that are gone.
  void rescan();
  bool watch(const std::string& directory, std::string& error);

  uv_loop_t* loop_;
  std::string root_;
  size_t max_depth_;
  OnChange on_change_;
  uint32_t debounce_ms_;
  size_t max_directories_;
  std::map<std::string, std::unique_ptr<Watch>> watches_;
  UvHandle<uv_timer_t> debounce_;
  std::set<std::string> changed_;  // *.lua paths since the last report
  bool over_budget_logged_ = false;
};

}  // namespace nshost::ops
