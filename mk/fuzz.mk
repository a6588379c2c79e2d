# fuzz/: libFuzzer targets for every parser that sees outside bytes
# (fuzz/README.md).  Built with clang and -fsanitize=fuzzer,address,undefined
# from their own objects under build/fuzz/ (the gcc objects of `make` are
# not instrumented); t/085-fuzz.t runs each over its seed corpus.
#   make fuzz && build/fuzz/fuzz_prom fuzz/corpus/prom
FUZZ_CC      ?= clang-14
FUZZ_TARGETS := request config prom kv tokenizer chat endpoints loadgen \
    body_scan
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra \
    -Werror -Wno-unused-parameter -I$(TOP)/src -I$(TOP)/loadgen \
    -I/usr/include/cjson $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
    -DFUZZ_DATA_DIR='"$(TOP)/t/data"'
FUZZ_BINS    := $(addprefix $(BUILD)/fuzz/fuzz_,$(FUZZ_TARGETS))

# what each target links besides fuzz_common, named as in src/ or loadgen/
FUZZ_OBJS_request   := core/llmd_prompt core/llmd_go_json \
    core/llmd_prefix_hash core/llmd_common
FUZZ_OBJS_body_scan := core/llmd_body_scan core/llmd_str_find \
    core/llmd_prompt_sink core/llmd_prompt core/llmd_go_json \
    core/llmd_prefix_hash core/llmd_common
FUZZ_OBJS_config    := $(SCHED_OBJS)
FUZZ_OBJS_prom      := core/llmd_prom core/llmd_common
FUZZ_OBJS_kv        := $(KV_OBJS) $(KV_CORE_OBJS)
FUZZ_OBJS_tokenizer := $(TOKENIZER_OBJS)
FUZZ_OBJS_chat      := $(CHAT_OBJS)
FUZZ_OBJS_endpoints := $(addprefix core/,llmd_endpoints_file llmd_labels \
    llmd_yaml llmd_common)
FUZZ_OBJS_loadgen   := loadgen/lg_http loadgen/lg_sse
FUZZ_LIBS := $(CORE_LIBS) $(KV_LIBS) $(TOKENIZER_LIBS)

.PHONY: fuzz
fuzz: $(FUZZ_BINS)

$(BUILD)/fuzz/obj/%.o: src/%.c $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(BUILD)/fuzz/obj/loadgen/%.o: loadgen/%.c $(wildcard loadgen/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(BUILD)/fuzz/obj/fuzz/%.o: fuzz/%.c fuzz/fuzz_common.h \
    $(wildcard src/*/*.h loadgen/*.h) t/unit/body_diff.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

define fuzz_rule
$(BUILD)/fuzz/fuzz_$(1): $(BUILD)/fuzz/obj/fuzz/fuzz_$(1).o \
    $(BUILD)/fuzz/obj/fuzz/fuzz_common.o \
    $$(addprefix $(BUILD)/fuzz/obj/,$$(addsuffix .o,$$(FUZZ_OBJS_$(1))))
	$$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $$^ -o $$@ $$(FUZZ_LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_rule,$(t))))
