#!/usr/bin/env bash
# A private CA and the certificates a wrenvnet cluster needs for TLS: one server
# certificate per etcd member or daemon API (its names and addresses as subject
# alternative names) and one client certificate per daemon, controller or operator.
# Every certificate is signed by the CA; every peer checks the other's against it.
#
#   scripts/certs.sh DIR ca                          # DIR/ca.{crt,key} (once per cluster)
#   scripts/certs.sh DIR server NAME [SAN...]        # DIR/NAME.{crt,key}; SAN: an IP or DNS name
#   scripts/certs.sh DIR client NAME                 # DIR/NAME.{crt,key} for client auth
#
# e.g. for the lab: certs.sh /tmp/pki ca; certs.sh /tmp/pki server etcd0 127.0.0.1 localhost;
# certs.sh /tmp/pki client h0. Keys are EC P-256, written 0600. The CA's key signs
# everything: keep it off the hosts (operators: on the machine that provisions them).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
dir=$1 kind=$2
shift 2
command -v openssl >/dev/null || { echo "certs.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
days=${DAYS:-825}

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

case "$kind" in
  ca)
    [ -f "$dir/ca.key" ] && { echo "certs.sh: $dir/ca.key exists; not replacing the CA" >&2; exit 1; }
    key "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" -subj "/CN=wrenvnet CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$dir/ca.crt"
    ;;
  server|client)
    [ $# -ge 1 ] || { echo "certs.sh: $kind needs a NAME" >&2; exit 2; }
    name=$1
    shift
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "certs.sh: bad name '$name'" >&2; exit 2; }
    [ -f "$dir/ca.key" ] || { echo "certs.sh: no CA in $dir (run: certs.sh $dir ca)" >&2; exit 1; }
    ext="$dir/$name.ext"
    if [ "$kind" = server ]; then
      [ $# -ge 1 ] || { echo "certs.sh: a server certificate needs at least one SAN" >&2; exit 2; }
      sans=()
      for s in "$@"; do
        if [[ "$s" =~ ^[0-9.]+$ ]] || [[ "$s" == *:* ]]; then sans+=("IP:$s"); else sans+=("DNS:$s"); fi
      done
      # A server certificate also authenticates its holder as a client: etcd members
      # dial each other, and a daemon's API may be reached by another daemon.
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n' \
        "$(IFS=,; echo "${sans[*]}")" > "$ext"
    else
      printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' > "$ext"
    fi
    key "$dir/$name.key"
    openssl req -new -key "$dir/$name.key" -subj "/CN=$name" -out "$dir/$name.csr"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
      -days "$days" -sha256 -extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
    rm -f "$dir/$name.csr" "$ext"
    ;;
  *) echo "certs.sh: KIND is ca, server or client, not '$kind'" >&2; exit 2 ;;
esac
chmod 0644 "$dir"/*.crt
echo "$dir: $(cd "$dir" && ls -- *.crt | tr '\n' ' ')"
