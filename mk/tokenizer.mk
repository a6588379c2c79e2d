# src/tokenizer: the byte-level BPE tokenizer (docs/tokenizer.md) and the
# native chat templates (docs/chat-templates.md). Plain C; depends on no
# other layer. Unit tests, the llmd-tokenize and llmd-chat-render CLIs
# (used by t/040-tokenizer.t and t/045-chat-template.t) and a benchmark.
TOKENIZER_OBJS := $(addprefix tokenizer/,llmd_tokenizer_load \
    llmd_tokenizer_table llmd_tokenizer_bpe llmd_tokenizer_pretok \
    llmd_tokenizer_added llmd_tokenizer_encode llmd_tokenizer_decode \
    llmd_tokenizer_cache)
CHAT_OBJS := $(addprefix tokenizer/,llmd_chat_template llmd_chat_validate \
    llmd_chat_qwen3 llmd_chat_llama llmd_chat_text)
TOKENIZER_LIBS := -lpcre2-8 -lutf8proc -lxxhash

UNIT_TESTS += test_tokenizer test_tokenizer_cache test_chat_template
UNIT_DEPS_test_tokenizer := $(TOKENIZER_OBJS)
UNIT_LIBS_test_tokenizer := $(TOKENIZER_LIBS)
UNIT_DEPS_test_tokenizer_cache := $(TOKENIZER_OBJS)
UNIT_LIBS_test_tokenizer_cache := $(TOKENIZER_LIBS)
UNIT_DEPS_test_chat_template := $(CHAT_OBJS)

TOOLS += $(BUILD)/bin/llmd-tokenize $(BUILD)/bin/llmd-tokenizer-bench \
    $(BUILD)/bin/llmd-chat-render

$(BUILD)/bin/llmd-tokenize: tools/llmd-tokenize.c \
    $(call objs,$(TOKENIZER_OBJS)) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS) $(TOKENIZER_LIBS)

$(BUILD)/bin/llmd-tokenizer-bench: bench/tokenizer-bench.c \
    $(call objs,$(TOKENIZER_OBJS)) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS) $(TOKENIZER_LIBS)

$(BUILD)/bin/llmd-chat-render: tools/llmd-chat-render.c \
    $(call objs,$(CHAT_OBJS)) | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS)
