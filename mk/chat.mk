# Native chat template renderers (docs/chat-templates.md): core object, its
# cmocka unit test and the llmd-chat-render CLI used by t/045-chat-template.t.
UNIT_TESTS += test_chat_template
UNIT_DEPS_test_chat_template := llmd_chat_template

TOOLS += $(BUILD)/bin/llmd-chat-render

$(BUILD)/bin/llmd-chat-render: tools/llmd-chat-render.c \
    $(BUILD)/obj/llmd_chat_template.o | $(BUILD)/bin
	$(CC) $(CORE_CFLAGS) $^ -o $@ $(CORE_LIBS)
