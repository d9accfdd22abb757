// The include graph of runtime/ and bindings/ read from the sources: no file
// in runtime/ includes bindings/, no file includes itself through others, and
// the folders of runtime/ form layers (no two folders include each other,
// directly or through a third), as the README's layout table says.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace fs = std::filesystem;

namespace {

using Graph = std::map<std::string, std::set<std::string>>;

// Every .hpp/.cpp under the given roots, by path relative to the source dir,
// with the project includes ("runtime/...", "bindings/...") it names.
Graph read_includes(const std::vector<std::string>& roots) {
  const fs::path source(nshost::test::source_dir());
  const std::regex include_line(R"re(^\s*#\s*include\s+"([^"]+)")re");
  Graph graph;
  for (const auto& root : roots) {
    for (const auto& entry : fs::recursive_directory_iterator(source / root)) {
      const auto ext = entry.path().extension();
      if (!entry.is_regular_file() || (ext != ".hpp" && ext != ".cpp")) continue;
      const std::string file = fs::relative(entry.path(), source).generic_string();
      auto& out = graph[file];
      std::ifstream in(entry.path());
      std::string line;
      std::smatch match;
      while (std::getline(in, line)) {
        if (std::regex_search(line, match, include_line) && fs::exists(source / match[1].str()))
          out.insert(match[1].str());
      }
    }
  }
  return graph;
}

// One cycle (as "a -> b -> a"), or "" when the graph has none.
std::string find_cycle(const Graph& graph) {
  std::map<std::string, int> color;  // 0 new, 1 on the path, 2 done
  std::vector<std::string> path;
  std::string cycle;
  std::function<void(const std::string&)> visit = [&](const std::string& node) {
    color[node] = 1;
    path.push_back(node);
    auto it = graph.find(node);
    if (it != graph.end()) {
      for (const auto& next : it->second) {
        if (!cycle.empty()) break;
        if (color[next] == 1) {
          auto from = std::find(path.begin(), path.end(), next);
          for (; from != path.end(); ++from) cycle += *from + " -> ";
          cycle += next;
        } else if (color[next] == 0) {
          visit(next);
        }
      }
    }
    path.pop_back();
    color[node] = 2;
  };
  for (const auto& [node, _] : graph) {
    if (color[node] == 0 && cycle.empty()) visit(node);
  }
  return cycle;
}

// "runtime/roles/server_role.cpp" -> "runtime/roles"; "runtime/main.cpp" -> "runtime".
std::string folder_of(const std::string& file) { return fs::path(file).parent_path().generic_string(); }

}  // namespace

TEST_CASE("layering: nothing in runtime/ includes bindings/") {
  for (const auto& [file, includes] : read_includes({"runtime"})) {
    for (const auto& include : includes) {
      CAPTURE(file);
      CHECK(include.rfind("bindings/", 0) == std::string::npos);
    }
  }
}

TEST_CASE("layering: the include graph of runtime/ and bindings/ has no cycle, file by file and folder by folder") {
  const Graph files = read_includes({"runtime", "bindings"});
  REQUIRE(files.size() > 50);
  CHECK_MESSAGE(find_cycle(files).empty(), find_cycle(files));

  Graph folders;
  for (const auto& [file, includes] : files) {
    for (const auto& include : includes) {
      if (folder_of(include) != folder_of(file)) folders[folder_of(file)].insert(folder_of(include));
    }
  }
  // main.cpp alone sits in runtime/ itself: it may include every layer.
  folders.erase("runtime");
  CHECK_MESSAGE(find_cycle(folders).empty(), find_cycle(folders));
}
