#!/usr/bin/env bash
# Installs what the tests use, when it is missing: Debian's PostgreSQL (storage conformance),
# Chromium (browser tests), OpenLDAP (LDAP connection), aiosmtpd (mail), and the npm packages
# of every committed package-lock.json (example apps, upstream identity provider peers).
# Idempotent; a second run changes nothing and takes a second.
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[[ -x /usr/sbin/slapd ]] || missing+=(slapd)
command -v ldapadd >/dev/null 2>&1 || missing+=(ldap-utils)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The SMTP server of the password reset tests (Debian's python, not another on PATH).
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || missing+=(python3-aiosmtpd)
# make image copies Debian's CA bundle into the image.
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
if [[ "${1:-}" == --node ]]; then
  command -v containerd >/dev/null 2>&1 || missing+=(containerd)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  [[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
fi

if ((${#missing[@]})); then
  echo "installing Debian packages: ${missing[*]}" >&2
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# npm packages come only from committed lock files (npm ci), into each project's own
# node_modules; npm's download cache lives outside the work tree.
while IFS= read -r lock; do
  dir=$(dirname "$lock")
  if [[ ! -d "$dir/node_modules" || "$lock" -nt "$dir/node_modules" ]]; then
    echo "installing npm packages of $dir" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
done < <(git ls-files '*package-lock.json')
