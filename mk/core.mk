# src/core: the scheduling core (EndpointPickerConfig model and loader,
# filters, scorers, pickers, scheduler, the whole decision with profile
# handlers, request parsing, approximate prefix hashing and index,
# Prometheus parser). Plain C; depends on no other layer.
#   make build/unit/test_scheduler && build/unit/test_scheduler
CORE_OBJS := $(addprefix core/,llmd_common llmd_yaml llmd_config_model \
    llmd_config llmd_config_params llmd_config_filters llmd_config_disagg \
    llmd_param llmd_scorers llmd_filters llmd_pickers llmd_scheduler \
    llmd_decide llmd_nohit_lru llmd_prompt llmd_go_json llmd_body_scan \
    llmd_str_find llmd_prefix_hash llmd_prompt_sink \
    llmd_index_region llmd_prefix_index llmd_prom llmd_labels \
    llmd_endpoints_file llmd_inflight llmd_saturation llmd_flowq \
    llmd_config_flow)

UNIT_TESTS += test_config test_scheduler test_decide test_nohit_lru \
    test_index_region test_prefix_index test_prefix_hash test_prompt \
    test_prom test_endpoints_file test_inflight test_body_scan test_flow \
    test_str_find

CONFIG_OBJS := $(addprefix core/,llmd_config_model llmd_config llmd_config_flow \
    llmd_config_params llmd_config_filters llmd_config_disagg llmd_param \
    llmd_yaml llmd_common llmd_saturation llmd_flowq)
SCHED_OBJS := $(addprefix core/,llmd_scheduler llmd_scorers llmd_filters \
    llmd_pickers llmd_decide llmd_nohit_lru llmd_labels) $(CONFIG_OBJS)
UNIT_DEPS_test_config := $(CONFIG_OBJS)
UNIT_DEPS_test_flow := $(CONFIG_OBJS)
UNIT_DEPS_test_scheduler := $(SCHED_OBJS)
UNIT_DEPS_test_decide := $(SCHED_OBJS)
UNIT_DEPS_test_nohit_lru := core/llmd_nohit_lru
UNIT_DEPS_test_index_region := core/llmd_index_region
UNIT_DEPS_test_prefix_index := $(addprefix core/,llmd_prefix_index \
    llmd_index_region llmd_prefix_hash llmd_common)
UNIT_DEPS_test_prefix_hash := $(addprefix core/,llmd_prefix_hash llmd_common)
UNIT_DEPS_test_prompt := $(addprefix core/,llmd_prompt llmd_go_json \
    llmd_prefix_hash \
    llmd_common)
UNIT_DEPS_test_body_scan := $(addprefix core/,llmd_body_scan llmd_str_find \
    llmd_prompt_sink llmd_prompt llmd_go_json llmd_prefix_hash llmd_common)
UNIT_DEPS_test_str_find := core/llmd_str_find
UNIT_DEPS_test_prom := $(addprefix core/,llmd_prom llmd_common)
UNIT_DEPS_test_inflight := core/llmd_inflight $(SCHED_OBJS)
UNIT_DEPS_test_endpoints_file := $(addprefix core/,llmd_endpoints_file \
    llmd_labels llmd_yaml llmd_common)

# bench/decision.c: the approximate decision without nginx
TOOLS += $(BUILD)/bin/llmd-bench-decision

# bench/prefix-index.c: the approximate index's lookup and record by
# prompt shape
TOOLS += $(BUILD)/bin/llmd-bench-prefix-index

$(BUILD)/bin/llmd-bench-prefix-index: bench/prefix-index.c \
    $(call objs,core/llmd_prefix_index core/llmd_index_region \
    core/llmd_common) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS)

$(BUILD)/bin/llmd-bench-decision: bench/decision.c \
    $(call objs,$(CORE_OBJS)) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS)
