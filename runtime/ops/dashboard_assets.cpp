#include "runtime/ops/dashboard_assets.hpp"

namespace nshost::ops {

// dashboard_files() is defined in the generated source (embed_dashboard.cmake).

const DashboardAsset* find_dashboard_asset(std::string_view path) {
  if (auto query = path.find('?'); query != std::string_view::npos) path = path.substr(0, query);
  if (path == "/index.html") path = "/";
  for (const DashboardFile& file : dashboard_files())
    if (file.path == path) return &file.asset;
  return nullptr;
}

}  // namespace nshost::ops
