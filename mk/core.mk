# Scheduling core: config loader, scorers, pickers, scheduler, prefix index.
UNIT_TESTS += test_config test_scheduler test_prefix_index

UNIT_DEPS_test_config := llmd_config llmd_config_params llmd_yaml llmd_common
UNIT_DEPS_test_scheduler := llmd_scheduler llmd_scorers llmd_pickers \
    llmd_config llmd_config_params llmd_yaml llmd_common
UNIT_DEPS_test_prefix_index := llmd_prefix_index llmd_prefix_hash llmd_common
