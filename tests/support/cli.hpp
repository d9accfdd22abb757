#pragma once
// Parses a command line as nshost would, with no $NSHOST_ROLE unless given.
#include <string>
#include <vector>

#include "runtime/config/options.hpp"

namespace nshost::test {

inline ParsedArgs parse(std::vector<std::string> args, const char* env_role = nullptr) {
  args.insert(args.begin(), "nshost");
  return parse_args(args, env_role);
}

}  // namespace nshost::test
