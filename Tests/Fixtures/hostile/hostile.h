/* What the hostile worker's files share: its JSON output buffer. */
#ifndef HOSTILE_H
#define HOSTILE_H

void out_str(const char *s);
/* A JSON member "name":"OK" or "name":"<errno name>"; `first` leaves out the comma. */
void out_result(const char *name, int error, int first);

/* sockets.c: the "sockets" mode's object. */
void probe_sockets(void);

#endif
