// json.encode / json.decode on a real ScriptHost state.
#include <doctest/doctest.h>

#include "tests/net/harness.hpp"

using namespace nshost::test;

namespace {

struct JsonRun : ScriptRun {
  JsonRun() : ScriptRun("") {}
  std::string enc(const std::string& lua_value) { return eval("json.encode(" + lua_value + ")"); }
  std::string enc_err(const std::string& lua_value) { return eval("select(2, json.encode(" + lua_value + "))"); }
};

}  // namespace

TEST_CASE("json.decode: objects, arrays, scalars, null and nesting") {
  JsonRun run;
  REQUIRE(run.started);
  REQUIRE(run.exec(R"lua(V = json.decode[[{"a": [1, 2.5, "x", true, false, null], "b": {"c": -7},
    "e": "\u00e9\n", "big": 18446744073709551615}]])lua") == "");
  CHECK(run.eval("V.a[1]") == "1");
  CHECK(run.eval("math.type(V.a[1])") == "integer");
  CHECK(run.eval("V.a[2]") == "2.5");
  CHECK(run.eval("V.a[3]") == "x");
  CHECK(run.eval("V.a[4] == true and V.a[5] == false") == "true");
  CHECK(run.eval("V.a[6] == json.null") == "true");
  CHECK(run.eval("#V.a") == "6");
  CHECK(run.eval("V.b.c") == "-7");
  CHECK(run.eval("V.e") == "\xc3\xa9\n");
  CHECK(run.eval("math.type(V.big)") == "float");
  CHECK(run.eval("json.decode('42')") == "42");
  CHECK(run.eval("json.decode('\"s\"')") == "s");
  CHECK(run.eval("json.decode('null') == json.null") == "true");
  CHECK(run.eval("next(json.decode('{}')) == nil and next(json.decode('[]')) == nil") == "true");
}

TEST_CASE("json.decode: bad input returns nil and a message") {
  JsonRun run;
  REQUIRE(run.started);
  CHECK(run.eval("json.decode('{\"a\": }')") == "nil");
  CHECK(run.eval("select(2, json.decode('{\"a\": }'))").find("syntax error") != std::string::npos);
  CHECK(run.eval("select(2, json.decode(''))").find("syntax error") != std::string::npos);
  CHECK(run.eval("select(2, json.decode('[1] trailing'))").find("syntax error") != std::string::npos);
  CHECK(run.eval("select(2, json.decode(string.rep('[', 300) .. string.rep(']', 300)))") ==
        "nesting deeper than 200 levels");
  CHECK(run.eval("json.decode(string.rep('[', 100) .. string.rep(']', 100)) ~= nil") == "true");
  CHECK(run.eval("select('#', json.decode('[1]'))") == "1");
  CHECK(run.eval("select(2, pcall(json.decode, {}))").find("string expected") != std::string::npos);
}

TEST_CASE("json.encode: values, arrays vs objects, and what cannot be encoded") {
  JsonRun run;
  REQUIRE(run.started);
  CHECK(run.enc("{1, 2, 'three', true}") == "[1,2,\"three\",true]");
  CHECK(run.enc("{a = 1}") == "{\"a\":1}");
  CHECK(run.enc("{}") == "{}");
  CHECK(run.enc("json.null") == "null");
  CHECK(run.enc("nil") == "null");
  CHECK(run.enc("1.5") == "1.5");
  CHECK(run.enc("'quote\" and \\n'") == "\"quote\\\" and \\n\"");
  CHECK(run.enc("{list = {json.null, 2}}") == "{\"list\":[null,2]}");
  CHECK(run.eval("json.decode(json.encode({x = {1, {y = 'z'}}})).x[2].y") == "z");
  CHECK(run.enc_err("{[1] = 'a', [3] = 'c'}").find("number key") != std::string::npos);
  CHECK(run.enc_err("{1, 2, x = 3}").find("number key") != std::string::npos);
  CHECK(run.enc_err("0/0") == "cannot encode NaN or infinity");
  CHECK(run.enc_err("math.huge") == "cannot encode NaN or infinity");
  CHECK(run.enc_err("print") == "cannot encode a function value");
  CHECK(run.enc_err("'\\xff'").find("UTF-8") != std::string::npos);
  run.exec("CYCLE = {}; CYCLE.self = CYCLE");
  CHECK(run.enc_err("CYCLE").find("a cycle?") != std::string::npos);
  CHECK(run.eval("json.encode(print)") == "nil");
}
