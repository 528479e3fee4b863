/*
 * A full client lifecycle through the C ABI: fingerprint, activate, verify, start a
 * session that heartbeats by itself, watch its events, end it.
 *
 *   gcc lifecycle.c -I ../../include -L ../../../target/debug -ltessera_client -o lifecycle
 *   LD_LIBRARY_PATH=../../../target/debug ./lifecycle http://127.0.0.1:8080 AF-2026-... XXXX-XXXX-XXXX-XXXX
 *
 * With --wait-for-signal as a fourth argument it installs the shutdown handler, prints
 * "ready" and waits: SIGINT or SIGTERM then ends the session on the server before the
 * process exits.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tessera_client.h"

static const char *kind_name(TesseraEventKind kind) {
    switch (kind) {
    case TESSERA_EVENT_KIND_ENDED: return "ended";
    case TESSERA_EVENT_KIND_DEGRADED: return "degraded";
    case TESSERA_EVENT_KIND_RECOVERED: return "recovered";
    case TESSERA_EVENT_KIND_UPDATE_AVAILABLE: return "update_available";
    }
    return "unknown";
}

/* Runs on the library's thread. */
static void on_event(void *user_data, const TesseraEvent *event) {
    (void)user_data;
    printf("event %s reason=%s detail=%s\n", kind_name(event->kind), event->reason, event->detail);
    fflush(stdout);
}

static int fail(const char *what, TesseraStatus status) {
    fprintf(stderr, "%s failed: status %d, code %s: %s\n", what, (int)status,
            tessera_last_error_code(), tessera_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s URL API_KEY LICENSE_KEY [--wait-for-signal]\n", argv[0]);
        return 2;
    }
    const char *url = argv[1], *api_key = argv[2], *license = argv[3];
    int wait_for_signal = argc > 4 && strcmp(argv[4], "--wait-for-signal") == 0;
    TesseraStatus s;

    char device[80];
    if ((s = tessera_fingerprint_hash(device, sizeof device)) != TESSERA_STATUS_OK)
        return fail("fingerprint", s);

    TesseraClient *client = NULL;
    if ((s = tessera_client_new(url, api_key, &client)) != TESSERA_STATUS_OK)
        return fail("client", s);
    if ((s = tessera_activate(client, license, device, "c-example", "1.0.0")) != TESSERA_STATUS_OK)
        return fail("activate", s);
    int update = 0;
    if ((s = tessera_verify(client, license, device, "1.0.0", &update)) != TESSERA_STATUS_OK)
        return fail("verify", s);
    printf("verified update_available=%d\n", update);

    if (wait_for_signal && (s = tessera_end_sessions_on_shutdown()) != TESSERA_STATUS_OK)
        return fail("shutdown handler", s);

    TesseraSession *session = NULL;
    s = tessera_session_start(client, license, device, "1.0.0", on_event, NULL, &session);
    if (s != TESSERA_STATUS_OK)
        return fail("session start", s);
    printf("session started\n");
    fflush(stdout);

    /* A second session on a single-session license is refused with the server's code. */
    TesseraSession *second = NULL;
    s = tessera_session_start(client, license, device, NULL, NULL, NULL, &second);
    printf("second session: status %d code %s\n", (int)s, tessera_last_error_code());

    /* Wait (at most 30 s) until the library has heartbeated three times by itself. */
    time_t deadline = time(NULL) + 30;
    while (tessera_session_heartbeats(session) < 3) {
        if (time(NULL) > deadline) {
            fprintf(stderr, "no heartbeats\n");
            return 1;
        }
        usleep(50 * 1000);
    }
    printf("heartbeats %llu valid %d\n", (unsigned long long)tessera_session_heartbeats(session),
           tessera_session_is_valid(session));
    fflush(stdout);

    if (wait_for_signal) {
        printf("ready\n");
        fflush(stdout);
        for (;;)
            pause();
    }

    if ((s = tessera_session_end(session)) != TESSERA_STATUS_OK)
        return fail("session end", s);
    printf("ended %s valid %d\n", tessera_session_end_reason(session),
           tessera_session_is_valid(session));
    tessera_session_free(session);
    tessera_client_free(client);
    return 0;
}
