#!/usr/bin/env bash
# The organisation's private package index, AWS CodeArtifact, for uv (README.md, "Internal
# packages"). No file of this repository records its address: it is asked for each time.
#
#   scripts/internal_index.sh env      print the variables uv reads to install from the index
#                                      and to publish to it (eval "$(scripts/internal_index.sh env)")
#   scripts/internal_index.sh publish  upload the client built into dist/client (make publish-client)
#
# Reads CODEARTIFACT_DOMAIN, CODEARTIFACT_REPOSITORY and CODEARTIFACT_DOMAIN_OWNER (`pulumi stack
# output codeartifact_domain` etc.) and asks the aws CLI, with your credentials, for the
# repository's endpoint and a token (12 hours; CODEARTIFACT_TOKEN_SECONDS). Without
# CODEARTIFACT_DOMAIN `env` prints nothing and uv reads PyPI only.
set -euo pipefail

CLIENT="{{ cookiecutter.project_slug }}-client"

codeartifact() {
  local owner=()
  if [ -n "${CODEARTIFACT_DOMAIN_OWNER:-}" ]; then owner=(--domain-owner "$CODEARTIFACT_DOMAIN_OWNER"); fi
  aws codeartifact "$@" --domain "$CODEARTIFACT_DOMAIN" "${owner[@]}" --output text
}

index_env() {
  [ -n "${CODEARTIFACT_DOMAIN:-}" ] || return 0
  : "${CODEARTIFACT_REPOSITORY:?is not set (pulumi stack output codeartifact_repository)}"
  local endpoint token
  endpoint=$(codeartifact get-repository-endpoint --repository "$CODEARTIFACT_REPOSITORY" \
    --format pypi --query repositoryEndpoint)
  token=$(codeartifact get-authorization-token \
    --duration-seconds "${CODEARTIFACT_TOKEN_SECONDS:-43200}" --query authorizationToken)
  endpoint="${endpoint%/}/"
  # The index is named `internal`: uv takes credentials from UV_INDEX_INTERNAL_*, and asks it
  # before PyPI for every package; a name it has is never looked up on PyPI (CodeArtifact's own
  # PyPI upstream: infra/README.md, "Internal packages", on dependency confusion).
  printf 'export %s=%q\n' \
    UV_INDEX "internal=${endpoint}simple/" \
    UV_INDEX_INTERNAL_USERNAME aws \
    UV_INDEX_INTERNAL_PASSWORD "$token" \
    UV_PUBLISH_URL "$endpoint" \
    UV_PUBLISH_USERNAME aws \
    UV_PUBLISH_PASSWORD "$token"
}

publish() {
  local variables
  variables=$(index_env)  # a failing aws call stops here (an eval of its output would not)
  eval "$variables"
  : "${UV_PUBLISH_URL:?is not set: set CODEARTIFACT_DOMAIN (or UV_PUBLISH_URL and its credentials)}"
  local version
  version=$(uv version --package "$CLIENT" --short)
  # On a tag (CI), the tag is the version: client-v1.4.0 publishes 1.4.0 or nothing.
  if [ -n "${CLIENT_TAG:-}" ] && [ "$CLIENT_TAG" != "client-v$version" ]; then
    echo "error: tag $CLIENT_TAG does not match $CLIENT $version in packages/{{ cookiecutter.package_name }}_client/pyproject.toml: tag client-v$version, or bump the version" >&2
    exit 1
  fi
  # A version is published once: indexes refuse to replace a file, and consumers' locks pin its hash.
  local index="${UV_INDEX#internal=}" listing
  listing=$(curl --silent --show-error --fail --user "$UV_PUBLISH_USERNAME:$UV_PUBLISH_PASSWORD" \
    "${index%/}/$CLIENT/" 2>/dev/null || true)
  if grep -qiE "${CLIENT//-/[-_]}-${version//./\\.}(\.tar\.gz|-)" <<<"$listing"; then
    echo "error: $CLIENT $version is already published; bump version in packages/{{ cookiecutter.package_name }}_client/pyproject.toml (README.md, \"Versioning the client\")" >&2
    exit 1
  fi
  uv publish dist/client/*
}

case "${1:-}" in
  env) index_env ;;
  publish) publish ;;
  *)
    echo "usage: $0 env|publish" >&2
    exit 2
    ;;
esac
