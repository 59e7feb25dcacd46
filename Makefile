# Hallpass: SSO for Kubernetes. `make help` lists the targets.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# IMG is the reference of the image that `make image` and `make docker-build` build. The
# operator deploys SSO servers from hallpass/hallpass:$(VERSION) unless told otherwise (the
# chart's serverImage), so keep the repository or set serverImage when you change it.
IMG ?= hallpass/hallpass:$(VERSION)
# The archive `make image` writes: an OCI image layout with Docker's manifest.json beside it.
IMAGE_ARCHIVE ?= $(LOCALBIN)/hallpass-image.tar
GOARCH ?= $(shell go env GOARCH)

# Tool versions, pinned. Tools are installed into ./bin by `go install`, one binary per version.
CONTROLLER_TOOLS_VERSION ?= v0.20.1
KUSTOMIZE_VERSION ?= v5.8.1
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v3.22.0
# The envtest control plane, built from Go modules by hack/envtest-binaries.sh.
ENVTEST_K8S_VERSION ?= 1.35.4
ENVTEST_ETCD_VERSION ?= 3.6.6

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)

# The Helm chart carries copies of generated files, refreshed by `make manifests`.
CHART_DIR := charts/hallpass

GO_LDFLAGS := -s -w -X github.com/hallpass/hallpass/internal/version.Version=$(VERSION)
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs, the operator's ClusterRole and the webhook configuration (also into the Helm chart).
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./api/..." paths="./controllers/..." paths="./internal/webhookcert/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac output:webhook:artifacts:config=config/webhook
	@# The chart installs the same CRDs, and renders its ClusterRole rules and webhooks from
	@# these copies, so that it cannot drift from what controller-gen generates.
	rm -f $(CHART_DIR)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART_DIR)/crds/
	cp config/rbac/role.yaml $(CHART_DIR)/files/manager-role.yaml
	cp config/rbac/tenant_role.yaml $(CHART_DIR)/files/tenant-role.yaml
	cp config/webhook/manifests.yaml $(CHART_DIR)/files/webhook-manifests.yaml

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify
verify: generate manifests ## Fail when generated files are stale or go.mod / go.sum are not tidy.
	@if ! go mod tidy -diff >/dev/null 2>&1; then \
		echo "go.mod / go.sum are not tidy; run 'go mod tidy' and commit:"; go mod tidy -diff; exit 1; fi
	@if [ -n "$$(git status --porcelain -- api config/crd config/rbac config/webhook $(CHART_DIR)/crds $(CHART_DIR)/files)" ]; then \
		echo "Generated files are stale; run 'make generate manifests' and commit:"; \
		git status --porcelain -- api config/crd config/rbac config/webhook $(CHART_DIR)/crds $(CHART_DIR)/files; git --no-pager diff --stat -- api config $(CHART_DIR); exit 1; fi

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run --allow-parallel-runners ./...

.PHONY: test
test: ## Run every check and test suite (installs what it needs on a fresh machine).
	hack/test.sh

.PHONY: test-unit
test-unit: ## Run the tests that need no installed service (no API server, browser, database or IdP peer); the fast loop.
	HALLPASS_TEST_POSTGRES_DSN= HALLPASS_E2E= HALLPASS_NODE= go test -short -count=1 ./...

.PHONY: kustomize-build
kustomize-build: $(KUSTOMIZE) ## Render config/default.
	$(KUSTOMIZE) build config/default

.PHONY: helm
helm: $(HELM) ## Install the pinned helm into ./bin (once); print its path.
	@echo $(HELM)

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the Helm chart.
	$(HELM) lint --strict $(CHART_DIR)

##@ Build

.PHONY: build
build: ## Build bin/hallpass.
	CGO_ENABLED=0 go build -trimpath -ldflags "$(GO_LDFLAGS)" -o bin/hallpass ./cmd/hallpass

.PHONY: image
image: ## Build the image $(IMG) without Docker into $(IMAGE_ARCHIVE) (for docker load, ctr images import, kind, k3d).
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) go build -trimpath -ldflags "$(GO_LDFLAGS)" -o $(LOCALBIN)/linux-$(GOARCH)/hallpass ./cmd/hallpass
	go run ./hack/image -binary $(LOCALBIN)/linux-$(GOARCH)/hallpass -arch $(GOARCH) -ref $(IMG) -output $(IMAGE_ARCHIVE)
	@echo "built $(IMG) into $(IMAGE_ARCHIVE)"

.PHONY: docker-build
docker-build: ## Build the image $(IMG) with Docker from the Dockerfile (the same image as make image).
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: run
run: manifests generate ## Run the operator against the cluster of the current kubeconfig.
	go run -ldflags "$(GO_LDFLAGS)" ./cmd/hallpass operator

.PHONY: envtest
envtest: ## Build (once, cached) the kube-apiserver and etcd used by tests; print their directory.
	@K8S_VERSION=$(ENVTEST_K8S_VERSION) ETCD_VERSION=$(ENVTEST_ETCD_VERSION) hack/envtest-binaries.sh

.PHONY: install
install: manifests $(KUSTOMIZE) ## Install the CRDs into the cluster of the current kubeconfig.
	$(KUSTOMIZE) build config/crd | kubectl apply --server-side -f -

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Deploy the operator to the cluster of the current kubeconfig.
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default | kubectl apply --server-side -f -

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

$(CONTROLLER_GEN): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

$(KUSTOMIZE): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/kustomize $@

$(GOLANGCI_LINT): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $@

# helm is built from its Go module, not added to go.mod: it is a tool, and its dependency
# graph would otherwise constrain the operator's.
$(HELM): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm $@

##@ Demo

.PHONY: demo
demo: ## Run Hallpass on localhost: control plane, operator, SSO server and the example apps.
	hack/demo.sh
