#pragma once
// The dashboard page (web/dashboard/, and uPlot from third_party/uplot/),
// embedded in the binary at build time by runtime/ops/embed_dashboard.cmake.
#include <span>
#include <string_view>

namespace nshost::ops {

struct DashboardAsset {
  std::string_view content_type;  // e.g. "text/html; charset=utf-8"
  std::string_view bytes;         // the file, never empty
};

// The dashboard file served at `path` ("/" is index.html; "/uPlot.iife.min.js",
// ...), or nullptr. A query string ("/?token=...") is ignored. The bytes are
// static (embedded at build time).
const DashboardAsset* find_dashboard_asset(std::string_view path);

// Every embedded file under its URL path ("/" for the page), for tests and
// listings; static storage.
struct DashboardFile {
  std::string_view path;
  DashboardAsset asset;
};
std::span<const DashboardFile> dashboard_files();

}  // namespace nshost::ops
