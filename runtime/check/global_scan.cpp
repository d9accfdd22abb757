#include "runtime/check/global_scan.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace nshost {
namespace {

struct Token {
  enum class Kind { name, keyword, string, number, symbol, end } kind = Kind::end;
  std::string text;  // names, keywords and symbols; empty for strings and numbers
  int line = 0;
};

bool is_keyword(std::string_view s) {
  static constexpr std::array<std::string_view, 22> kKeywords = {
      "and", "break", "do",  "else", "elseif", "end",    "false", "for",  "function", "goto",  "if",
      "in",  "local", "nil", "not",  "or",     "repeat", "return", "then", "true",    "until", "while"};
  return std::find(kKeywords.begin(), kKeywords.end(), s) != kKeywords.end();
}

bool name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

class Lexer {
 public:
  explicit Lexer(std::string_view src) : s_(src) {
    if (s_.size() > 0 && s_[0] == '#')  // a first line such as "#!/usr/bin/env lua" (Lua skips it)
      while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
  }

  std::vector<Token> run() {
    std::vector<Token> out;
    for (;;) {
      Token t = next();
      bool done = t.kind == Token::Kind::end;
      out.push_back(std::move(t));
      if (done) return out;
    }
  }

 private:
  char at(size_t i) const { return i < s_.size() ? s_[i] : '\0'; }

  // At '[': the level of a long bracket "[==[" starting here, or -1.
  int long_bracket_level(size_t i) const {
    if (at(i) != '[') return -1;
    size_t j = i + 1;
    while (at(j) == '=') ++j;
    return at(j) == '[' ? static_cast<int>(j - i - 1) : -1;
  }

  // Skips a long bracket of `level` whose opening starts at pos_, counting lines.
  void skip_long(int level) {
    pos_ += static_cast<size_t>(level) + 2;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c == '\n') ++line_;
      if (c == ']') {
        size_t j = pos_ + 1;
        while (at(j) == '=') ++j;
        if (at(j) == ']' && static_cast<int>(j - pos_ - 1) == level) {
          pos_ = j + 1;
          return;
        }
      }
      ++pos_;
    }
  }

  Token next() {
    for (;;) {
      while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) {
        if (s_[pos_] == '\n') ++line_;
        ++pos_;
      }
      if (at(pos_) == '-' && at(pos_ + 1) == '-') {
        pos_ += 2;
        if (int level = long_bracket_level(pos_); level >= 0) {
          skip_long(level);
        } else {
          while (pos_ < s_.size() && s_[pos_] != '\n') ++pos_;
        }
        continue;
      }
      break;
    }
    Token t;
    t.line = line_;
    if (pos_ >= s_.size()) return t;
    char c = s_[pos_];
    if (name_start(c)) {
      size_t start = pos_;
      while (name_char(at(pos_))) ++pos_;
      t.text.assign(s_.substr(start, pos_ - start));
      t.kind = is_keyword(t.text) ? Token::Kind::keyword : Token::Kind::name;
      return t;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && std::isdigit(static_cast<unsigned char>(at(pos_ + 1))))) {
      bool hex = c == '0' && (at(pos_ + 1) == 'x' || at(pos_ + 1) == 'X');
      if (hex) pos_ += 2;
      for (;;) {
        char d = at(pos_);
        bool exponent = hex ? (d == 'p' || d == 'P') : (d == 'e' || d == 'E');
        if (exponent && (at(pos_ + 1) == '+' || at(pos_ + 1) == '-')) pos_ += 2;
        else if (name_char(d) || d == '.') ++pos_;
        else break;
      }
      t.kind = Token::Kind::number;
      return t;
    }
    if (c == '"' || c == '\'') {
      ++pos_;
      while (pos_ < s_.size() && s_[pos_] != c) {
        if (s_[pos_] == '\n') {
          ++line_;
          break;  // unfinished string: the compiler reports it
        }
        if (s_[pos_] == '\\') {
          ++pos_;
          if (at(pos_) == '\n') ++line_;
        }
        ++pos_;
      }
      ++pos_;
      t.kind = Token::Kind::string;
      return t;
    }
    if (int level = long_bracket_level(pos_); level >= 0) {
      skip_long(level);
      t.kind = Token::Kind::string;
      return t;
    }
    t.kind = Token::Kind::symbol;
    if (c == '.' && at(pos_ + 1) == '.' && at(pos_ + 2) == '.') {
      t.text = "...";
    } else {
      static constexpr std::array<std::string_view, 10> kPairs = {"..", "==", "~=", "<=", ">=", "//", "::", "<<", ">>"};
      std::string_view two = s_.substr(pos_, 2);
      bool pair = two.size() == 2 && std::find(kPairs.begin(), kPairs.end(), two) != kPairs.end();
      t.text.assign(pair ? two : s_.substr(pos_, 1));
    }
    pos_ += t.text.size();
    return t;
  }

  std::string_view s_;
  size_t pos_ = 0;
  int line_ = 1;
};

bool is_sym(const Token& t, std::string_view s) { return t.kind == Token::Kind::symbol && t.text == s; }
bool is_kw(const Token& t, std::string_view s) { return t.kind == Token::Kind::keyword && t.text == s; }

// Whether `t` ends an expression, so that a name after it starts a new statement.
bool ends_expression(const Token& t) {
  switch (t.kind) {
    case Token::Kind::name:
    case Token::Kind::string:
    case Token::Kind::number:
      return true;
    case Token::Kind::keyword:
      return t.text == "end" || t.text == "true" || t.text == "false" || t.text == "nil";
    case Token::Kind::symbol:
      return t.text == ")" || t.text == "]" || t.text == "}" || t.text == "...";
    case Token::Kind::end:
      return false;
  }
  return false;
}

// Whether `t`, after `prev` (nullptr at the start), begins a statement.
bool starts_statement(const Token* prev, const Token& t) {
  if (t.kind == Token::Kind::keyword) {
    static constexpr std::array<std::string_view, 13> kStatementKeywords = {
        "local", "if", "for", "while", "do", "repeat", "return", "break", "goto", "end", "until", "else", "elseif"};
    if (std::find(kStatementKeywords.begin(), kStatementKeywords.end(), t.text) != kStatementKeywords.end()) return true;
    if (t.text != "function") return false;
  } else if (is_sym(t, ";") || is_sym(t, "::")) {
    return true;
  } else if (t.kind != Token::Kind::name) {
    return false;
  }
  if (!prev) return true;
  if (ends_expression(*prev)) return true;
  if (is_sym(*prev, ";") || is_sym(*prev, "::")) return true;
  return prev->kind == Token::Kind::keyword &&
         (prev->text == "do" || prev->text == "then" || prev->text == "else" || prev->text == "repeat" ||
          prev->text == "break");
}

class Scanner {
 public:
  explicit Scanner(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  GlobalScan run() {
    stack_.push_back(Ctx{Ctx::Kind::block});
    for (i_ = 0; i_ < t_.size() && t_[i_].kind != Token::Kind::end; ++i_) step();
    return std::move(out_);
  }

 private:
  struct Ctx {
    enum class Kind { block, function, header, table, paren, index } kind;
    std::vector<std::string> names;    // locals declared in this scope
    std::vector<std::string> pending;  // declared at the next statement (`local x = <expr>`) or, in a header, at `do`
    bool closing = false;              // a repeat block after `until`: ends at the next statement
  };

  bool is_block(const Ctx& c) const { return c.kind == Ctx::Kind::block || c.kind == Ctx::Kind::function; }
  int function_depth() const {
    int n = 0;
    for (const Ctx& c : stack_) n += c.kind == Ctx::Kind::function;
    return n;
  }
  bool is_local(const std::string& name) const {
    if (name == "_ENV") return true;
    for (auto it = stack_.rbegin(); it != stack_.rend(); ++it)
      if (std::find(it->names.begin(), it->names.end(), name) != it->names.end()) return true;
    return false;
  }
  const Token& tok(size_t i) const { return i < t_.size() ? t_[i] : t_.back(); }
  const Token* prev() const { return i_ > 0 ? &t_[i_ - 1] : nullptr; }

  void pop() {
    if (stack_.size() > 1) stack_.pop_back();
  }
  // Pops down to and including the innermost context of `kind`, if any.
  void pop_to(Ctx::Kind kind) {
    for (size_t k = stack_.size(); k > 1; --k) {
      if (stack_[k - 1].kind == kind) {
        stack_.resize(k - 1);
        return;
      }
    }
  }
  // Pops the innermost block or function (an `end`).
  void pop_block() {
    while (stack_.size() > 1 && !is_block(stack_.back())) stack_.pop_back();
    pop();
  }

  void use(const Token& name, bool write) {
    if (is_local(name.text)) return;
    bool in_function = function_depth() > 0;
    out_.uses.push_back(GlobalUse{name.text, name.line, write, in_function});
    if (!write) return;
    out_.writes.insert(name.text);
    if (!in_function) out_.top_level_writes.insert(name.text);
  }
  void field_write(const Token& table, const Token& field) {
    if (!is_local(table.text)) out_.field_writes.push_back(GlobalFieldWrite{table.text, field.text, table.line});
  }

  // At a statement's start: ends the previous statement's pending scope work.
  void settle_statement() {
    while (is_block(stack_.back()) && stack_.size() > 1 && stack_.back().closing) stack_.pop_back();
    Ctx& top = stack_.back();
    for (std::string& n : top.pending) top.names.push_back(std::move(n));
    top.pending.clear();
  }

  // "(params)" starting at i_ (which must be "("); leaves i_ on ")".
  std::vector<std::string> read_params() {
    std::vector<std::string> params;
    if (!is_sym(tok(i_), "(")) return params;
    for (++i_; i_ < t_.size() && !is_sym(tok(i_), ")") && tok(i_).kind != Token::Kind::end; ++i_)
      if (tok(i_).kind == Token::Kind::name) params.push_back(tok(i_).text);
    return params;
  }

  void open_function(std::vector<std::string> params) {
    Ctx fn{Ctx::Kind::function};
    fn.names = std::move(params);
    stack_.push_back(std::move(fn));
  }

  // After `function` at i_: the name (if a statement), the parameters; pushes the body.
  void function_at() {
    std::vector<std::string> params;
    if (tok(i_ + 1).kind == Token::Kind::name) {
      ++i_;
      const Token& first = tok(i_);
      bool method = false;
      if (is_sym(tok(i_ + 1), ".") || is_sym(tok(i_ + 1), ":")) {
        if (tok(i_ + 2).kind == Token::Kind::name && is_sym(tok(i_ + 3), "(")) field_write(first, tok(i_ + 2));
        use(first, false);
        while ((is_sym(tok(i_ + 1), ".") || is_sym(tok(i_ + 1), ":")) && tok(i_ + 2).kind == Token::Kind::name) {
          method = is_sym(tok(i_ + 1), ":");
          i_ += 2;
        }
      } else {
        use(first, true);
      }
      if (method) params.push_back("self");
    }
    ++i_;
    std::vector<std::string> more = read_params();
    params.insert(params.end(), more.begin(), more.end());
    open_function(std::move(params));
  }

  // `a, b.c, d[1] = ...` starting at i_: marks the plain names assigned.
  void assignment_targets() {
    size_t j = i_;
    int depth = 0;
    std::vector<std::vector<size_t>> items(1);
    const Token* last = nullptr;
    for (;; ++j) {
      const Token& t = tok(j);
      if (t.kind == Token::Kind::end) return;
      if (depth > 0) {
        if (is_sym(t, "(") || is_sym(t, "[") || is_sym(t, "{")) ++depth;
        else if (is_sym(t, ")") || is_sym(t, "]") || is_sym(t, "}")) --depth;
        items.back().push_back(j);
        last = &t;
        continue;
      }
      if (is_sym(t, "=")) break;
      if (is_sym(t, ",")) {
        items.emplace_back();
        last = nullptr;
        continue;
      }
      bool opens = is_sym(t, "(") || is_sym(t, "[") || is_sym(t, "{");
      bool allowed = t.kind == Token::Kind::name || t.kind == Token::Kind::string || opens || is_sym(t, ".") ||
                     is_sym(t, ":");
      if (!allowed) return;
      if (t.kind == Token::Kind::name && last && ends_expression(*last)) return;  // a new statement
      if (opens) ++depth;
      items.back().push_back(j);
      last = &t;
    }
    for (const auto& item : items) {
      if (item.size() == 1 && tok(item[0]).kind == Token::Kind::name) targets_.push_back(item[0]);
      if (item.size() == 3 && tok(item[0]).kind == Token::Kind::name && is_sym(tok(item[1]), ".") &&
          tok(item[2]).kind == Token::Kind::name)
        field_write(tok(item[0]), tok(item[2]));
    }
  }

  void step() {
    const Token& t = t_[i_];
    if (is_block(stack_.back()) && starts_statement(prev(), t)) settle_statement();
    Ctx& top = stack_.back();
    if (t.kind == Token::Kind::keyword) {
      const std::string& k = t.text;
      if (k == "local") {
        if (is_kw(tok(i_ + 1), "function") && tok(i_ + 2).kind == Token::Kind::name) {
          top.names.push_back(tok(i_ + 2).text);
          i_ += 3;
          open_function(read_params());
          return;
        }
        while (tok(i_ + 1).kind == Token::Kind::name) {
          top.pending.push_back(tok(i_ + 1).text);
          ++i_;
          if (is_sym(tok(i_ + 1), "<") && is_sym(tok(i_ + 3), ">")) i_ += 3;  // <const>, <close>
          if (!is_sym(tok(i_ + 1), ",")) break;
          ++i_;
        }
      } else if (k == "function") {
        function_at();
      } else if (k == "do") {
        if (top.kind == Ctx::Kind::header) {
          top.kind = Ctx::Kind::block;
          top.names = std::move(top.pending);
          top.pending.clear();
        } else {
          stack_.push_back(Ctx{Ctx::Kind::block});
        }
      } else if (k == "while" || k == "if") {
        stack_.push_back(Ctx{Ctx::Kind::header});
      } else if (k == "for") {
        Ctx header{Ctx::Kind::header};
        while (tok(i_ + 1).kind == Token::Kind::name) {
          header.pending.push_back(tok(i_ + 1).text);
          ++i_;
          if (!is_sym(tok(i_ + 1), ",")) break;
          ++i_;
        }
        stack_.push_back(std::move(header));
      } else if (k == "then") {
        if (top.kind == Ctx::Kind::header) top.kind = Ctx::Kind::block;
      } else if (k == "elseif") {
        pop_block();
        stack_.push_back(Ctx{Ctx::Kind::header});
      } else if (k == "else") {
        pop_block();
        stack_.push_back(Ctx{Ctx::Kind::block});
      } else if (k == "repeat") {
        stack_.push_back(Ctx{Ctx::Kind::block});
      } else if (k == "until") {
        top.closing = true;
      } else if (k == "end") {
        pop_block();
      } else if (k == "goto") {
        ++i_;  // the label's name
      }
      return;
    }
    if (t.kind == Token::Kind::symbol) {
      if (t.text == "::") {
        i_ += 2;  // ::name::
      } else if (t.text == "(") {
        stack_.push_back(Ctx{Ctx::Kind::paren});
      } else if (t.text == "[") {
        stack_.push_back(Ctx{Ctx::Kind::index});
      } else if (t.text == "{") {
        stack_.push_back(Ctx{Ctx::Kind::table});
      } else if (t.text == ")") {
        pop_to(Ctx::Kind::paren);
      } else if (t.text == "]") {
        pop_to(Ctx::Kind::index);
      } else if (t.text == "}") {
        pop_to(Ctx::Kind::table);
      }
      return;
    }
    if (t.kind != Token::Kind::name) return;
    if (const Token* p = prev(); p && (is_sym(*p, ".") || is_sym(*p, ":"))) return;  // a field or method
    if (top.kind == Ctx::Kind::table && is_sym(tok(i_ + 1), "=")) return;  // a key of a table constructor
    if (is_block(top) && starts_statement(prev(), t)) assignment_targets();
    bool write = std::find(targets_.begin(), targets_.end(), i_) != targets_.end();
    use(t, write);
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  std::vector<Ctx> stack_;
  std::vector<size_t> targets_;  // token indices of names assigned by the current statement
  GlobalScan out_;
};

}  // namespace

GlobalScan scan_globals(std::string_view source) { return Scanner(Lexer(source).run()).run(); }

size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rows of the table: two back for a transposition.
  std::vector<size_t> before(b.size() + 1), previous(b.size() + 1), row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      row[j] = std::min({previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) row[j] = std::min(row[j], before[j - 2] + 1);
    }
    std::swap(before, previous);
    std::swap(previous, row);
  }
  return previous[b.size()];
}

}  // namespace nshost
