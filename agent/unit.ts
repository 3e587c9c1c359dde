/**
 * The systemd unit of ssm-proxy-agent. It lives in the binary so an installer can write the unit
 * that matches the very binary it installed (`ssm-proxy-agent unit > /etc/systemd/system/…`);
 * scripts/ssm-proxy-agent.service is the same text for setup-ec2-instance.sh, and a test keeps the
 * two byte-identical.
 *
 * ProtectSystem=strict makes every path read-only except the directories systemd creates for us:
 * StateDirectory (leases, kept across restarts), RuntimeDirectory (status.json, gone when the
 * service stops) and LogsDirectory (a file audit trail). The runtime directory is ssm-proxy-agent, not ssm-proxy: /run/ssm-proxy belongs
 * to the ssm-proxy client (its tunnel state files), which systemd would wipe on every agent stop
 * and whose `stop --all` would take status.json for a tunnel and signal the agent.
 */
export const UNIT =
  `# ssm-proxy-agent: the instance side of ssm-proxy. Session Manager Port sessions
# (AWS-StartPortForwardingSession to port 7797) connect to it on loopback.
# Install: copy the compiled binary to /usr/local/bin/ssm-proxy-agent, write this unit with
#   ssm-proxy-agent unit > /etc/systemd/system/ssm-proxy-agent.service
# (or copy scripts/ssm-proxy-agent.service), optionally write /etc/ssm-proxy/agent.yaml, then
#   systemctl daemon-reload && systemctl enable --now ssm-proxy-agent
# Uninstall: systemctl disable --now ssm-proxy-agent, then ssm-proxy-agent cleanup (removes the
# NAT rules and leases a stopped agent keeps), then remove the binary and this unit.
[Unit]
Description=ssm-proxy agent (tunnels over AWS Systems Manager Session Manager)
Documentation=https://github.com/ssm-proxy/ssm-proxy
Wants=network-online.target
After=network-online.target amazon-ssm-agent.service snap.amazon-ssm-agent.amazon-ssm-agent.service

[Service]
Type=simple
ExecStart=/usr/local/bin/ssm-proxy-agent serve --config /etc/ssm-proxy/agent.yaml
# SIGTERM: the agent says goodbye to every stripe, removes its tun, restores ip_forward and
# exits 0. With a state directory (below) it keeps its leases and its NAT rules, so a restart
# gives every tunnel its address back without resetting connections; the next start replaces
# the rules atomically, never duplicating them. Without a state dir the agent removes the NAT
# rules too.
KillSignal=SIGTERM
TimeoutStopSec=15
Restart=on-failure
RestartSec=2

# Root for /proc/sys writes and nft, but only the network capability.
User=root
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW
AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW
NoNewPrivileges=yes
DeviceAllow=/dev/net/tun rw
ProtectSystem=strict
# /var/lib/ssm-proxy: address leases (leases.json), exported as $STATE_DIRECTORY.
StateDirectory=ssm-proxy
StateDirectoryMode=0700
# /run/ssm-proxy-agent: status.json for ssm-proxy-agent status, exported as $RUNTIME_DIRECTORY.
# World-readable (it holds no secrets) so status works from a non-root Session Manager shell.
RuntimeDirectory=ssm-proxy-agent
RuntimeDirectoryMode=0755
# /var/log/ssm-proxy: where "audit: /var/log/ssm-proxy/audit.jsonl" can write (the only
# writable place for a file audit under ProtectSystem=strict).
LogsDirectory=ssm-proxy
LogsDirectoryMode=0750
ProtectHome=yes
PrivateTmp=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX
LockPersonality=yes

[Install]
WantedBy=multi-user.target
`;
