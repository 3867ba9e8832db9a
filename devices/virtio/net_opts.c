/* virtio-net's command-line options (--net): the network kind, mac=, hostfwd= and ifname=,
 * parsed into struct net_opts (net.h). No device here: the model is net.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/net.h"

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &tail) != 6 || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

static int parse_port(const char *s, uint16_t *port, bool zero_ok)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535 || (!zero_ok && v == 0))
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* "ADDR:PORT" with ADDR possibly empty; s is modified. */
static int parse_addr_port(char *s, struct in_addr *addr, struct in_addr dflt, uint16_t *port,
			   bool zero_ok)
{
	char *colon = strrchr(s, ':');

	if (!colon)
		return -EINVAL;
	*colon = '\0';
	if (!*s)
		*addr = dflt;
	else if (inet_pton(AF_INET, s, addr) != 1)
		return -EINVAL;
	return parse_port(colon + 1, port, zero_ok);
}

/* [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT */
static int parse_hostfwd(char *s, struct net_hostfwd *h)
{
	char *colon = strchr(s, ':'), *dash;
	struct in_addr any = { htonl(INADDR_ANY) }, guest;

	if (!colon)
		return -EINVAL;
	*colon = '\0';
	if (!strcmp(s, "udp"))
		h->udp = true;
	else if (strcmp(s, "tcp") && *s)
		return -EINVAL;
	s = colon + 1;
	dash = strchr(s, '-');
	if (!dash)
		return -EINVAL;
	*dash = '\0';
	inet_pton(AF_INET, "10.0.2.15", &guest);
	if (parse_addr_port(s, &h->host_addr, any, &h->host_port, true) < 0 ||
	    parse_addr_port(dash + 1, &h->guest_addr, guest, &h->guest_port, false) < 0)
		return -EINVAL;
	return 0;
}

int net_parse_opts(const char *spec, struct net_opts *o, struct err *e)
{
	char buf[1024], *save = NULL, *tok;
	bool ifname_set = false;

	memset(o, 0, sizeof(*o));
	if (strlen(spec) >= sizeof(buf))
		return err_set(e, -EINVAL, "--net: the option string is too long%s", "");
	strcpy(buf, spec);
	tok = strtok_r(buf, ",", &save);
	if (!tok)
		return err_set(e, -EINVAL, "--net %s: give user, tap,ifname=NAME or none", spec);
	if (!strcmp(tok, "user"))
		o->kind = NET_USER;
	else if (!strcmp(tok, "tap"))
		o->kind = NET_TAP;
	else if (!strcmp(tok, "none"))
		o->kind = NET_NONE;
	else
		return err_set(e, -EINVAL, "--net %s: unknown network; give user, tap,ifname=NAME or none",
			       tok);
	while ((tok = strtok_r(NULL, ",", &save))) {
		char *val = strchr(tok, '=');

		if (o->kind == NET_NONE)
			return err_set(e, -EINVAL, "--net none takes no options (got '%s')", tok);
		if (!val)
			return err_set(e, -EINVAL, "--net: option '%s' needs a value (NAME=VALUE)", tok);
		*val++ = '\0';
		if (!strcmp(tok, "mac")) {
			if (parse_mac(val, o->mac) < 0)
				return err_set(e, -EINVAL, "--net: mac=%s: give six hex bytes, as "
					       "52:54:00:12:34:56", val);
			if (o->mac[0] & 1)
				return err_set(e, -EINVAL, "--net: mac=%s is a multicast address (the "
					       "first byte must be even)", val);
			o->mac_set = true;
		} else if (!strcmp(tok, "hostfwd") && o->kind == NET_USER) {
			char copy[256];

			snprintf(copy, sizeof(copy), "%s", val);
			if (o->nhostfwd == NET_MAX_HOSTFWD)
				return err_set(e, -EINVAL, "--net: too many hostfwd rules (at most %s)",
					       "16");
			if (parse_hostfwd(val, &o->hostfwd[o->nhostfwd]) < 0)
				return err_set(e, -EINVAL, "--net: hostfwd=%s: give "
					       "[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", copy);
			o->nhostfwd++;
		} else if (!strcmp(tok, "ifname") && o->kind == NET_TAP) {
			if (!*val || strlen(val) >= IFNAMSIZ || strchr(val, '/'))
				return err_set(e, -EINVAL, "--net: ifname=%s: not a valid interface name",
					       val);
			strcpy(o->ifname, val);
			ifname_set = true;
		} else if (!strcmp(tok, "hostfwd") || !strcmp(tok, "ifname")) {
			return err_set(e, -EINVAL, "--net: %s= is not an option of this network (hostfwd= "
				       "is for user, ifname= for tap)", tok);
		} else {
			return err_set(e, -EINVAL, "--net: unknown option '%s' (give mac=, hostfwd= or "
				       "ifname=)", tok);
		}
	}
	if (o->kind == NET_TAP && !ifname_set)
		return err_set(e, -EINVAL, "--net %s: give the interface: tap,ifname=NAME", "tap");
	return 0;
}
