#!/usr/bin/env bash
# The plant network's private CA and the broker's TLS certificate.
#
#   deploy/tls/make-certs.sh OUT_DIR BROKER_NAME [NAME_OR_IP ...]
#
# OUT_DIR gets ca.crt (give it to every gateway, ingest and simulator), ca.key (keep it
# offline: it makes certificates the whole plant trusts), server.crt and server.key (the
# broker's, for the names and addresses its clients use). Run again with other names to
# renew the broker's certificate: an existing CA is kept.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 OUT_DIR BROKER_NAME [NAME_OR_IP ...]" >&2
    exit 2
fi
command -v openssl >/dev/null || { echo "$0: openssl is needed (apt-get install openssl)" >&2; exit 2; }
out=$1
shift
mkdir -p "$out"
cd "$out"
umask 077
san=""
for name in "$@"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then entry="IP:$name"; else entry="DNS:$name"; fi
    san="${san:+$san,}$entry"
done
if [ ! -f ca.key ]; then
    echo "making the plant CA (ca.crt, ca.key; 10 years)"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
        -days 3650 -keyout ca.key -out ca.crt -subj "/CN=moldlab plant CA" 2>/dev/null
fi
echo "making the broker's certificate for $san (server.crt, server.key; 825 days)"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key \
    -out server.csr -subj "/CN=$1" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 825 \
    -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext
# The broker may run as another user (mosquitto): its key readable by the group, the rest public.
chmod 644 ca.crt server.crt
chmod 640 server.key
echo "done: $(pwd)"
