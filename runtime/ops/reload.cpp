#include "runtime/ops/reload.hpp"

#include <filesystem>
#include <string_view>
#include <system_error>
#include <vector>

#include "runtime/core/log.hpp"

namespace nshost::ops {
namespace fs = std::filesystem;
namespace {

// A script file as the bundle takes them: "*.lua", not hidden. Editors'
// temporaries ("game.lua~", ".game.lua.swp", "4913") do not count; the
// rename that ends their save reports the real name.
bool is_script_name(std::string_view name) {
  return name.size() > 4 && name.front() != '.' && name.substr(name.size() - 4) == ".lua";
}

}  // namespace

struct ScriptWatcher::Watch {
  ScriptWatcher* owner;
  std::string directory;
  UvHandle<uv_fs_event_t> handle;
};

ScriptWatcher::ScriptWatcher(uv_loop_t* loop, std::string root, size_t max_depth, OnChange on_change,
                             uint32_t debounce_ms, size_t max_directories)
    : loop_(loop),
      root_(root.empty() ? "." : std::move(root)),
      max_depth_(max_depth),
      on_change_(std::move(on_change)),
      debounce_ms_(debounce_ms),
      max_directories_(max_directories) {}

ScriptWatcher::~ScriptWatcher() = default;

bool ScriptWatcher::start(std::string& error) {
  if (int rc = debounce_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }); rc != 0) {
    error = std::string("libuv: ") + uv_strerror(rc);
    return false;
  }
  debounce_.get()->data = this;
  if (!watch(root_, error)) return false;
  rescan();
  return true;
}

bool ScriptWatcher::watch(const std::string& directory, std::string& error) {
  auto w = std::make_unique<Watch>();
  w->owner = this;
  w->directory = directory;
  int rc = w->handle.init([&](uv_fs_event_t* h) { return uv_fs_event_init(loop_, h); });
  if (rc == 0) {
    w->handle.get()->data = w.get();
    rc = uv_fs_event_start(w->handle.get(), &ScriptWatcher::on_event, directory.c_str(), 0);
  }
  if (rc != 0) {
    error = "cannot watch " + directory + ": " + uv_strerror(rc);
    return false;
  }
  watches_[directory] = std::move(w);
  return true;
}

void ScriptWatcher::rescan() {
  std::error_code ec;
  std::set<std::string> present{root_};
  fs::recursive_directory_iterator it(root_, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    bool directory = it->is_directory(ec);
    if (ec) break;
    if (!directory) continue;
    if (name.empty() || name.front() == '.' || static_cast<size_t>(it.depth()) + 1 >= max_depth_) {
      it.disable_recursion_pending();
      if (name.empty() || name.front() == '.') continue;
    }
    present.insert(it->path().string());
  }
  std::erase_if(watches_, [&](const auto& entry) { return !present.count(entry.first); });
  for (const std::string& directory : present) {
    if (watches_.count(directory)) continue;
    if (watches_.size() >= max_directories_) {
      if (!over_budget_logged_)
        log_write(LogLevel::warn, "server",
                  "reload: watching " + std::to_string(max_directories_) + " directories, the most it will; edits in " +
                      directory + " and any further ones are not seen");
      over_budget_logged_ = true;
      break;
    }
    std::string error;
    if (!watch(directory, error)) log_write(LogLevel::warn, "server", "reload: " + error);
  }
}

void ScriptWatcher::on_event(uv_fs_event_t* handle, const char* filename, int, int status) {
  auto* w = static_cast<Watch*>(handle->data);
  if (!w || status != 0) return;
  w->owner->note(w->directory, filename);
}

void ScriptWatcher::note(const std::string& directory, const char* filename) {
  // A new directory counts (the scripts already in it were not seen); a name
  // that is neither (an editor's temporary) only restarts the wait of a
  // burst under way.
  std::error_code ec;
  if (!filename) changed_.insert(directory + "/");
  else if (is_script_name(filename)) changed_.insert(directory + "/" + filename);
  else if (fs::is_directory(directory + "/" + filename, ec)) changed_.insert(directory + "/" + filename + "/");
  else if (changed_.empty()) return;
  uv_timer_start(
      debounce_.get(),
      [](uv_timer_t* t) {
        if (t->data) static_cast<ScriptWatcher*>(t->data)->fire();
      },
      debounce_ms_, 0);
}

void ScriptWatcher::fire() {
  rescan();
  if (changed_.empty()) return;  // only directories came and went
  size_t files = changed_.size();
  changed_.clear();
  on_change_(files);
}

}  // namespace nshost::ops
