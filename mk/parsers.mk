# The request, metrics and prefix-hash parsers of the scheduling core and
# their cmocka unit tests (docs/parsers.md).
#   make build/unit/test_prompt && build/unit/test_prompt
UNIT_TESTS += test_prefix_hash test_prompt test_prom

UNIT_DEPS_test_prefix_hash := llmd_prefix_hash llmd_common
UNIT_DEPS_test_prompt      := llmd_prompt llmd_prefix_hash llmd_common
UNIT_DEPS_test_prom        := llmd_prom llmd_common
