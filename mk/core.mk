# Scheduling core: config loader, scorers, pickers, scheduler, prefix index.
UNIT_TESTS += test_config test_scheduler test_prefix_index

UNIT_DEPS_test_config := llmd_config llmd_config_params llmd_yaml llmd_common
UNIT_DEPS_test_scheduler := llmd_scheduler llmd_scorers llmd_pickers \
    llmd_config llmd_config_params llmd_yaml llmd_common
UNIT_DEPS_test_prefix_index := llmd_prefix_index llmd_prefix_hash llmd_common

# bench/decision.c: the approximate decision without nginx
TOOLS += $(BUILD)/bin/llmd-bench-decision
DECISION_OBJS := llmd_prompt llmd_prefix_hash llmd_prefix_index \
    llmd_scheduler llmd_scorers llmd_pickers llmd_config \
    llmd_config_params llmd_yaml llmd_common

$(BUILD)/bin/llmd-bench-decision: bench/decision.c \
    $(addprefix $(BUILD)/obj/,$(addsuffix .o,$(DECISION_OBJS))) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS)
