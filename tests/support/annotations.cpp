#include "tests/support/annotations.hpp"

#include <regex>
#include <sstream>

namespace nshost::test {

std::string kinds_text(unsigned kinds) {
  std::string out;
  for (auto [bit, name] : {std::pair{kServerState, "server"}, {kClientState, "client"}, {kRoomState, "room"}}) {
    if (!(kinds & bit)) continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

namespace {

struct Line {
  int number;
  std::string text;
};

// What a `local X` or `X` names after its class.
struct Binding {
  enum class What { global, module, object } what;
  std::string cls;
  unsigned kinds;
};

const std::regex kClass(R"(^---@class\s+([A-Za-z_][\w.]*))");
const std::regex kField(R"(^---@field\s+(?:(?:private|protected|public|package)\s+)?([A-Za-z_]\w*)\??\s)");
const std::regex kMeta(R"(^---@meta\s+(\S+))");
const std::regex kKinds(R"(^---\[([a-z, ]*)\])");
const std::regex kGlobalFunction(R"(^function ([A-Za-z_]\w*)\()");
const std::regex kMember(R"(^function ([A-Za-z_]\w*)\.([A-Za-z_]\w*)\()");
const std::regex kMethod(R"(^function ([A-Za-z_]\w*):([A-Za-z_]\w*)\()");
const std::regex kLocal(R"(^local ([A-Za-z_]\w*)\s*=)");
const std::regex kGlobal(R"(^([A-Za-z_]\w*)\s*=)");

class Reader {
 public:
  explicit Reader(AnnotationFile& out) : out_(out) {}

  void block(const std::vector<Line>& lines, const Line* code) {
    std::string cls;
    std::vector<std::string> fields;
    unsigned kinds = 0;
    bool described = false;
    for (const Line& line : lines) {
      std::smatch m;
      if (std::regex_search(line.text, m, kMeta)) out_.meta_name = m[1];
      if (std::regex_search(line.text, m, kClass)) cls = m[1];
      if (std::regex_search(line.text, m, kField)) fields.push_back(m[1]);
      bool tag_line = line.text.rfind("---@", 0) != 0 && line.text.rfind("---|", 0) != 0;
      if (tag_line && !described) {
        described = true;
        if (std::regex_search(line.text, m, kKinds)) kinds = parse_kinds(m[1], line);
      }
    }
    int at = code ? code->number : (lines.empty() ? 0 : lines.front().number);
    if (!code) {
      standalone(cls, fields, kinds, at);
      return;
    }
    std::smatch m;
    const std::string& text = code->text;
    if (std::regex_search(text, m, kMember)) {
      member(m[1], m[2], kinds, at);
    } else if (std::regex_search(text, m, kMethod)) {
      method(m[1], m[2], kinds, at);
    } else if (std::regex_search(text, m, kGlobalFunction)) {
      if (!kinds) error(at, "global function '" + m[1].str() + "' has no [kinds] line");
      add(out_.names, m[1], kinds, at);
    } else if (std::regex_search(text, m, kLocal)) {
      bind_local(m[1], cls, fields, kinds, at);
    } else if (std::regex_search(text, m, kGlobal)) {
      if (!kinds) error(at, "global '" + m[1].str() + "' has no [kinds] line");
      add(out_.names, m[1], kinds, at);
      if (!cls.empty()) bindings_[m[1]] = {Binding::What::global, cls, kinds};
      for (const std::string& f : fields) add(out_.names, m[1].str() + "." + f, kinds, at);
    } else if (text.rfind("return", 0) != 0) {
      error(at, "a line this reader does not know: " + text);
    }
  }

 private:
  unsigned parse_kinds(const std::string& list, const Line& line) {
    unsigned kinds = 0;
    std::stringstream items(list);
    std::string item;
    while (std::getline(items, item, ',')) {
      item.erase(0, item.find_first_not_of(' '));
      item.erase(item.find_last_not_of(' ') + 1);
      if (item == "server") kinds |= kServerState;
      else if (item == "client") kinds |= kClientState;
      else if (item == "room") kinds |= kRoomState;
      else error(line.number, "unknown kind of state '" + item + "' (server, client, room)");
    }
    return kinds;
  }

  void standalone(const std::string& cls, const std::vector<std::string>& fields, unsigned kinds, int at) {
    static const std::regex handlers(R"(^nshost\.(\w+)_handlers$)");
    std::smatch m;
    if (std::regex_search(cls, m, handlers)) {
      for (const std::string& f : fields) add(out_.handlers[m[1]], f, kinds, at);
    } else if (!cls.empty() && kinds) {
      error(at, "class " + cls + " has [kinds] but no `local X = {}` or `X = {}` after it");
    }
  }

  void bind_local(const std::string& var, const std::string& cls, const std::vector<std::string>& fields,
                  unsigned kinds, int at) {
    if (cls.empty()) {
      error(at, "`local " + var + "` without a ---@class");
      return;
    }
    if (!kinds) error(at, "class " + cls + " has no [kinds] line");
    if (cls == out_.meta_name) {
      bindings_[var] = {Binding::What::module, cls, kinds};
      for (const std::string& f : fields) add(out_.names, cls + "." + f, kinds, at);
      return;
    }
    bindings_[var] = {Binding::What::object, cls, kinds};
    add(out_.object_classes, cls, kinds, at);
    for (const std::string& f : fields) add(out_.object_fields, cls + "." + f, kinds, at);
  }

  void member(const std::string& table, const std::string& name, unsigned kinds, int at) {
    auto it = bindings_.find(table);
    if (it == bindings_.end() || it->second.what == Binding::What::object) {
      error(at, "function " + table + "." + name + ": '" + table +
                    "' is not a global table or module bound to a ---@class above it");
      return;
    }
    std::string prefix = it->second.what == Binding::What::global ? table : it->second.cls;
    add(out_.names, prefix + "." + name, kinds ? kinds : it->second.kinds, at);
  }

  void method(const std::string& table, const std::string& name, unsigned kinds, int at) {
    auto it = bindings_.find(table);
    if (it == bindings_.end() || it->second.what != Binding::What::object) {
      error(at, "function " + table + ":" + name + ": '" + table + "' is not a `local` bound to a ---@class above it");
      return;
    }
    add(out_.names, it->second.cls + ":" + name, kinds ? kinds : it->second.kinds, at);
  }

  void add(std::map<std::string, Annotated>& into, const std::string& name, unsigned kinds, int at) {
    if (into.count(name)) error(at, "'" + name + "' is annotated twice (also at " + into[name].where + ")");
    into[name] = {kinds, out_.path + ":" + std::to_string(at)};
  }

  void error(int at, const std::string& what) { out_.errors.push_back(out_.path + ":" + std::to_string(at) + ": " + what); }

  AnnotationFile& out_;
  std::map<std::string, Binding> bindings_;
};

}  // namespace

AnnotationFile parse_annotations(const std::string& path, const std::string& text) {
  AnnotationFile out;
  out.path = path;
  Reader reader(out);
  std::vector<Line> block;
  std::istringstream in(text);
  std::string raw;
  int number = 0;
  while (std::getline(in, raw)) {
    ++number;
    if (raw.rfind("---", 0) == 0) {
      block.push_back({number, raw});
      continue;
    }
    size_t first = raw.find_first_not_of(" \t\r");
    bool code = first != std::string::npos && raw.compare(first, 2, "--") != 0;
    if (code) {
      Line line{number, raw};
      reader.block(block, &line);
    } else if (!block.empty()) {
      reader.block(block, nullptr);
    }
    block.clear();
  }
  if (!block.empty()) reader.block(block, nullptr);
  return out;
}

}  // namespace nshost::test
