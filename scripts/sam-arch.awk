# Prints the architecture that `sam build` resolved for one function (awk -v id=LogicalId),
# read from the .aws-sam/build.toml it writes before running the builds:
#   [function_build_definitions.<uuid>]
#   architecture = "x86_64"
#   functions = ["AgentsFunction"]
# Prints nothing when the function is not there. Used by the root Makefile.
function flush() { if (hit && arch != "") { print arch; found = 1; exit } }
# A new table ends the definition, except the definition's own sub-tables ([....metadata]).
/^\[/ { flush(); if ($0 !~ /^\[function_build_definitions\.[^].]*\./) { arch = ""; hit = 0 } }
/^architecture *= *"/ { v = $0; sub(/^architecture *= *"/, "", v); sub(/".*/, "", v); arch = v }
/^functions *= *\[/ { if (index($0, "\"" id "\"") > 0) hit = 1 }
END { if (!found) flush() }
