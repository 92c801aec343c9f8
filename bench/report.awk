# SPDX-License-Identifier: Apache-2.0
# report.awk - turns bench/run's raw samples into the Markdown table.
#
# Input lines: "METRIC SYSTEM VALUE", one per measurement (a round), in any
# order. Each cell is the median with min..max when there are several
# rounds; the ratios are spicegate's median over the peer's median. Targets
# come from the table below (issues #4 and #10): "ws>=1.3" means spicegate/websockify >= 1.3,
# "abs>=N"/"abs<=N" compares spicegate's own median. mawk-compatible (no
# asort).

function fmt(v, f) { return sprintf(f, v) }

function isort(arr, n,    i, j, t) {
    for (i = 2; i <= n; i++) {
        t = arr[i]
        for (j = i - 1; j >= 1 && arr[j] > t; j--)
            arr[j + 1] = arr[j]
        arr[j + 1] = t
    }
}

# Median, min and max of the samples of (metric, system) into M[], LO[], HI[].
function summarise(key,    n, i, v, parts) {
    n = split(vals[key], parts, " ")
    for (i = 1; i <= n; i++)
        v[i] = parts[i] + 0
    isort(v, n)
    LO[key] = v[1]
    HI[key] = v[n]
    M[key] = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    N[key] = n
}

function cell(metric, sys, f,    key) {
    key = metric SUBSEP sys
    if (!(key in vals))
        return "-"
    if (N[key] == 1 || LO[key] == HI[key])
        return fmt(M[key], f)
    return fmt(M[key], f) " (" fmt(LO[key], f) "..." fmt(HI[key], f) ")"
}

function ratio(metric, peer,    a, b) {
    a = metric SUBSEP "spicegate"
    b = metric SUBSEP peer
    if (!(a in M) || !(b in M))
        return "-"
    if (M[b] == 0)
        return M[a] == 0 ? "-" : "inf"
    return sprintf("%.2fx", M[a] / M[b])
}

# "yes"/"no"/"-" for a target spec like "ws>=1.3,socat>=1.1".
function verdict(metric, spec,    n, i, parts, op, lhs, rhs, val, ok, any, peer) {
    if (spec == "")
        return "-"
    n = split(spec, parts, ",")
    ok = 1
    any = 0
    for (i = 1; i <= n; i++) {
        op = index(parts[i], ">=") ? ">=" : "<="
        lhs = substr(parts[i], 1, index(parts[i], op) - 1)
        rhs = substr(parts[i], index(parts[i], op) + 2) + 0
        if (lhs == "abs") {
            if (!((metric SUBSEP "spicegate") in M))
                continue
            val = M[metric SUBSEP "spicegate"]
        } else {
            peer = lhs == "ws" ? "websockify" : lhs
            if (!((metric SUBSEP "spicegate") in M) || !((metric SUBSEP peer) in M))
                continue
            if (M[metric SUBSEP peer] == 0) {
                # The peer managed nothing at all: any output beats it.
                if (M[metric SUBSEP "spicegate"] == 0)
                    continue
                val = (op == ">=") ? rhs : rhs + 1
            } else {
                val = M[metric SUBSEP "spicegate"] / M[metric SUBSEP peer]
            }
        }
        any = 1
        if (op == ">=" && val < rhs)
            ok = 0
        if (op == "<=" && val > rhs)
            ok = 0
    }
    if (!any)
        return "-"
    return ok ? "yes" : "**no**"
}

# "ws>=1.3,socat>=1.1" -> ">= 1.3x websockify, >= 1.1x socat"
function spec_text(spec,    n, i, parts, op, lhs, rhs, out) {
    n = split(spec, parts, ",")
    out = ""
    for (i = 1; i <= n; i++) {
        op = index(parts[i], ">=") ? ">=" : "<="
        lhs = substr(parts[i], 1, index(parts[i], op) - 1)
        rhs = substr(parts[i], index(parts[i], op) + 2)
        out = out (i > 1 ? ", " : "") op " " rhs
        if (lhs != "abs")
            out = out "x " (lhs == "ws" ? "websockify" : lhs)
    }
    return out
}

# The second table: spicegate's rows toward a TLS SPICE server (metric
# spice_tls_M) next to its plain rows (M) of the same run.
function spice_tls_table(    i, n, m, a, b, r, tm) {
    n = split("down1 up cps1 ttfb_p50 ttfb_p99 cpu_gb_down cpu_gb_up cpu_ms_conn", tm, " ")
    for (i = 1; i <= n; i++)
        if (("spice_tls_" tm[i]) in seen)
            break
    if (i > n)
        return
    if (printed_main)
        print ""
    print "TLS toward the SPICE server (spicegate; plain = its row above):"
    print ""
    print "| Metric | plain TCP to SPICE server | TLS to SPICE server | TLS/plain |"
    print "|---|---|---|---|"
    for (i = 1; i <= n; i++) {
        m = tm[i]
        if (!(("spice_tls_" m) in seen))
            continue
        a = ("spice_tls_" m) SUBSEP "spicegate"
        b = m SUBSEP "spicegate"
        r = "-"
        if ((a in M) && (b in M) && M[b] != 0)
            r = sprintf("%.2fx", M[a] / M[b])
        printf "| %s | %s | %s | %s |\n", label[m], cell(m, "spicegate", f[m]),
            cell("spice_tls_" m, "spicegate", f[m]), r
    }
}

BEGIN {
    # metric | label | printf format | target spec
    nrows = split("down1 down8 up rtt_p50 rtt_p99 rttpin_p50 rttpin_p99 cps1 cps16 " \
                  "ttfb_p50 ttfb_p99 cpu_gb_down cpu_gb_up cpu_ms_conn " \
                  "wss_down1 wss_down8 wss_up wss_cps1 wss_cps16 wss_cps1r " \
                  "wss_ttfb_p50 wss_ttfb_p99 wss_cpu_gb_down wss_cpu_gb_up wss_cpu_ms_conn " \
                  "hold1k_alive hold1k_pss hold1k_secs hold10k_alive hold10k_pss hold10k_secs " \
                  "idle0_rtt idle0_down1 idle0_cps1 idle0_cpuconn " \
                  "idle1k_held idle1k_rtt_x idle1k_down1_x idle1k_cps1_x idle1k_cpuconn_x " \
                  "idle3k_held idle3k_rtt_x idle3k_down1_x idle3k_cps1_x idle3k_cpuconn_x " \
                  "idle10k_held idle10k_rtt_x idle10k_down1_x idle10k_cps1_x idle10k_cpuconn_x",
                  rows, " ")
    label["down1"] = "Downstream, 1 conn (MB/s)"
    label["down8"] = "Downstream, 8 conns (MB/s)"
    label["up"] = "Upstream, 16 KiB masked frames (MB/s)"
    label["rtt_p50"] = "RTT 64 B p50 (us)"
    label["rtt_p99"] = "RTT 64 B p99 (us)"
    label["rttpin_p50"] = "RTT 64 B p50, one CPU (us)"
    label["rttpin_p99"] = "RTT 64 B p99, one CPU (us)"
    label["cps1"] = "Connections/s, 1 at a time"
    label["cps16"] = "Connections/s, 16 at a time"
    label["ttfb_p50"] = "Time to first byte p50 (ms)"
    label["ttfb_p99"] = "Time to first byte p99 (ms)"
    label["cpu_gb_down"] = "Proxy CPU per GB down (s)"
    label["cpu_gb_up"] = "Proxy CPU per GB up (s)"
    label["cpu_ms_conn"] = "Proxy CPU per connection (ms)"
    label["wss_down1"] = "wss downstream, 1 conn (MB/s)"
    label["wss_down8"] = "wss downstream, 8 conns (MB/s)"
    label["wss_up"] = "wss upstream, 16 KiB masked frames (MB/s)"
    label["wss_cps1"] = "wss connections/s, 1 at a time"
    label["wss_cps16"] = "wss connections/s, 16 at a time"
    label["wss_cps1r"] = "wss connections/s, 1 at a time, TLS resumed"
    label["wss_ttfb_p50"] = "wss time to first byte p50 (ms)"
    label["wss_ttfb_p99"] = "wss time to first byte p99 (ms)"
    label["wss_cpu_gb_down"] = "wss proxy CPU per GB down (s)"
    label["wss_cpu_gb_up"] = "wss proxy CPU per GB up (s)"
    label["wss_cpu_ms_conn"] = "wss proxy CPU per connection (ms)"
    label["hold1k_alive"] = "1,000 idle sessions: alive"
    label["hold1k_pss"] = "1,000 idle: PSS per session (KiB)"
    label["hold1k_secs"] = "1,000 idle: time to open (s)"
    label["hold10k_alive"] = "10,000 idle sessions: alive"
    label["hold10k_pss"] = "10,000 idle: PSS per session (KiB)"
    label["hold10k_secs"] = "10,000 idle: time to open (s)"
    label["idle0_rtt"] = "Idle rows, none held: RTT 64 B p50 (us)"
    label["idle0_down1"] = "Idle rows, none held: downstream, 1 conn (MB/s)"
    label["idle0_cps1"] = "Idle rows, none held: connections/s, 1 at a time"
    label["idle0_cpuconn"] = "Idle rows, none held: proxy CPU per connection (ms)"
    f["idle0_rtt"] = f["idle0_down1"] = f["idle0_cps1"] = "%.0f"
    f["idle0_cpuconn"] = "%.3f"
    split("1k 3k 10k", idle_n, " ")
    split("1,000 3,000 10,000", idle_text, " ")
    for (i = 1; i <= 3; i++) {
        k = "idle" idle_n[i]
        label[k "_held"] = idle_text[i] " idle: sessions held"
        label[k "_rtt_x"] = idle_text[i] " idle: RTT p50, x the same with none"
        label[k "_down1_x"] = idle_text[i] " idle: downstream, x the same with none"
        label[k "_cps1_x"] = idle_text[i] " idle: connections/s, x the same with none"
        # No target: what the rate above costs the proxy, without the noise
        # of the client and the target sharing its CPUs.
        label[k "_cpuconn_x"] = idle_text[i] " idle: proxy CPU per connection, x the same with none"
        f[k "_held"] = "%.0f"
        f[k "_rtt_x"] = f[k "_down1_x"] = f[k "_cps1_x"] = f[k "_cpuconn_x"] = "%.2f"
        # Issue #13, point 1.
        target[k "_rtt_x"] = "abs<=1.2"
        target[k "_down1_x"] = target[k "_cps1_x"] = "abs>=0.8"
    }
    f["down1"] = f["down8"] = f["up"] = "%.0f"
    f["wss_down1"] = f["wss_down8"] = f["wss_up"] = "%.0f"
    f["wss_cps1"] = f["wss_cps16"] = f["wss_cps1r"] = "%.0f"
    f["wss_ttfb_p50"] = f["wss_ttfb_p99"] = "%.2f"
    f["wss_cpu_gb_down"] = f["wss_cpu_gb_up"] = f["wss_cpu_ms_conn"] = "%.2f"
    f["rtt_p50"] = f["rtt_p99"] = f["rttpin_p50"] = f["rttpin_p99"] = "%.0f"
    f["cps1"] = f["cps16"] = "%.0f"
    f["ttfb_p50"] = f["ttfb_p99"] = "%.2f"
    f["cpu_gb_down"] = f["cpu_gb_up"] = "%.2f"
    f["cpu_ms_conn"] = "%.2f"
    f["hold1k_alive"] = f["hold10k_alive"] = "%.0f"
    f["hold1k_pss"] = f["hold10k_pss"] = "%.1f"
    f["hold1k_secs"] = f["hold10k_secs"] = "%.1f"
    target["down1"] = target["down8"] = "ws>=1.3,socat>=1.1"
    target["up"] = "ws>=3,socat>=0.9"
    target["rttpin_p50"] = target["rttpin_p99"] = "ws<=0.6"
    target["cps1"] = target["cps16"] = "ws>=10"
    target["ttfb_p50"] = "ws<=0.1"
    target["cpu_gb_down"] = target["cpu_gb_up"] = "ws<=0.7"
    target["hold10k_alive"] = "abs>=10000"
    # Issue #10.
    target["wss_down1"] = target["wss_down8"] = "ws>=1.3"
    target["wss_cps1"] = target["wss_cps16"] = "ws>=3"
    target["hold1k_pss"] = target["hold10k_pss"] = "abs<=32"
    nsys = split("plain wsdirect spicegate websockify socat", sys, " ")
    sysname["plain"] = "plain TCP"
    sysname["wsdirect"] = "ws direct"
    sysname["spicegate"] = "spicegate"
    sysname["websockify"] = "websockify"
    sysname["socat"] = "socat"
}

NF >= 3 {
    key = $1 SUBSEP $2
    vals[key] = (key in vals) ? vals[key] " " $3 : $3
    seen[$1] = 1
}

END {
    for (key in vals)
        summarise(key)
    for (r = 1; r <= nrows; r++)
        if (rows[r] in seen)
            printed_main = 1
    if (printed_main)
        main_table()
    spice_tls_table()
}

function main_table(    i, r, m) {
    printf "| Metric |"
    for (i = 1; i <= nsys; i++)
        printf " %s |", sysname[sys[i]]
    print " sg/websockify | sg/socat | target | met |"
    printf "|---|"
    for (i = 1; i <= nsys; i++)
        printf "---|"
    print "---|---|---|---|"
    for (r = 1; r <= nrows; r++) {
        m = rows[r]
        if (!(m in seen))
            continue
        printf "| %s |", label[m]
        for (i = 1; i <= nsys; i++)
            printf " %s |", cell(m, sys[i], f[m])
        printf " %s | %s | %s | %s |\n", ratio(m, "websockify"), ratio(m, "socat"),
            spec_text(target[m]), verdict(m, target[m])
    }
}
