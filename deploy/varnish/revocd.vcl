# Varnish in front of revocd's data plane: caches OCSP GET answers, CRLs and AIA files
# for as long as revocd's CDN-Cache-Control allows (RFC 9213), files each under the
# cache tags revocd sends in `xkey`, and drops them when revocd's purger asks
# (PURGE with the tags in `xkey-purge`, from the addresses in `purgers` only).
#
# revocd: [cdn] tag_header = "xkey", cdn_max_age_seconds = ...; and a [[cdn.purge]]
# with kind = "http", url = "http://<this varnish>/" (docs/cdn.md).
# Needs vmod-xkey (Debian: varnish-modules). ${REVOCD_BACKEND_HOST},
# ${REVOCD_BACKEND_PORT} and ${REVOCD_PURGER} are filled in by the deployment
# (tests/e2e/test_cdn_varnish.py runs this file).
vcl 4.1;

import std;
import xkey;

backend revocd {
    .host = "${REVOCD_BACKEND_HOST}";
    .port = "${REVOCD_BACKEND_PORT}";
    .connect_timeout = 2s;
    .first_byte_timeout = 5s;
}

acl purgers {
    "${REVOCD_PURGER}";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "not a purger"));
        }
        if (req.http.xkey-purge) {
            set req.http.x-purged = xkey.purge(req.http.xkey-purge);
            return (synth(200, "purged " + req.http.x-purged));
        }
        return (purge);
    }
    if (req.method != "GET" && req.method != "HEAD") {
        # POSTs carry a nonce or several CertIDs: answers for one client only
        return (pass);
    }
    # OCSP, CRLs and AIA are public: no cookie or credential varies them
    unset req.http.Cookie;
    unset req.http.Authorization;
    return (hash);
}

sub vcl_backend_response {
    # RFC 9213: CDN-Cache-Control is this cache's; clients keep Cache-Control. revocd
    # never sends a max-age beyond the answer's nextUpdate or the CRL's.
    if (beresp.http.CDN-Cache-Control ~ "max-age=[0-9]+") {
        set beresp.ttl = std.duration(
            regsub(beresp.http.CDN-Cache-Control, "^.*max-age=([0-9]+).*$", "\1") + "s", 0s);
        set beresp.grace = 0s;
        set beresp.keep = 0s;
    }
    unset beresp.http.CDN-Cache-Control;
}

sub vcl_deliver {
    # the tags are for this cache, not for clients
    unset resp.http.xkey;
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
