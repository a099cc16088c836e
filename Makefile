# `sam build` entry points (template.yaml: `Metadata: BuildMethod: makefile`, `CodeUri: .`).
#
# SAM runs `make build-<LogicalId>` once per function with ARTIFACTS_DIR set. Every target runs
# scripts/package.sh, which builds ALL functions in one `cargo lambda build --release` of the
# workspace, then copies its own target/lambda/<crate>/bootstrap into ARTIFACTS_DIR. The first
# target compiles; cargo finds the others up to date (a no-op of about a second each), so the
# workspace is compiled once per `sam build`, not once per function. samconfig.toml builds in
# source (no copy of the repository) and not in parallel (the targets would only queue on
# cargo's lock of the target directory).
#
# Architecture: SAM passes none to makefile builds (aws-sam-cli issue 3349). The targets take,
# in order: ARCH from the environment (x86_64 or arm64) when set; else the architecture SAM
# resolved for the function from the template's `Architecture` parameter, read from the
# build.toml that `sam build` writes next to the build directory before building; else arm64,
# the template's default. An ARCH that disagrees with SAM's resolved one is an error.

ROOT := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PACKAGE := $(ROOT)/scripts/package.sh

# $(call lambda,CRATE,LOGICAL_ID)
define lambda
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (run through sam build)" >&2; exit 1; }
	@sam_arch="$$(awk -v id='$(2)' -f $(ROOT)/scripts/sam-arch.awk "$(ARTIFACTS_DIR)/../../build.toml" 2>/dev/null || true)"; \
	arch="$${ARCH:-$${sam_arch:-arm64}}"; \
	if [ -n "$$sam_arch" ] && [ "$$arch" != "$$sam_arch" ]; then \
	  echo "$(2): ARCH=$$arch but the template resolves Architecture=$$sam_arch; build with matching values" >&2; exit 1; \
	fi; \
	ARCH="$$arch" "$(PACKAGE)" --install $(1) "$(ARTIFACTS_DIR)"
endef

.PHONY: build-AgentsFunction build-ConversationsFunction build-TemplatesFunction \
	build-WebhookFunction build-WorkerFunction build-MigrateFunction build-ContactsFunction \
	build-EventsFunction build-ExtractionFunction build-MeetingsFunction build-MeetingsSweepFunction \
	build-CampaignsFunction build-CampaignStartFunction build-SendWorkerFunction

build-AgentsFunction:
	$(call lambda,agents,AgentsFunction)

build-ConversationsFunction:
	$(call lambda,conversations,ConversationsFunction)

build-TemplatesFunction:
	$(call lambda,templates,TemplatesFunction)

build-WebhookFunction:
	$(call lambda,webhook,WebhookFunction)

build-WorkerFunction:
	$(call lambda,conversation-worker,WorkerFunction)

build-ExtractionFunction:
	$(call lambda,extraction-worker,ExtractionFunction)

build-MeetingsFunction:
	$(call lambda,meetings,MeetingsFunction)

build-MeetingsSweepFunction:
	$(call lambda,meetings-sweep,MeetingsSweepFunction)

build-MigrateFunction:
	$(call lambda,migrate,MigrateFunction)

build-ContactsFunction:
	$(call lambda,contacts,ContactsFunction)

build-EventsFunction:
	$(call lambda,events,EventsFunction)

build-CampaignsFunction:
	$(call lambda,campaigns,CampaignsFunction)

build-CampaignStartFunction:
	$(call lambda,campaign-start,CampaignStartFunction)

build-SendWorkerFunction:
	$(call lambda,send-worker,SendWorkerFunction)
