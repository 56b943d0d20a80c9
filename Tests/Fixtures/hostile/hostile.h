/* What the hostile worker's files share: its JSON output buffer. */
#ifndef HOSTILE_H
#define HOSTILE_H

void out_str(const char *s);
/* A JSON member "name":"OK" or "name":"<errno name>"; `first` leaves out the comma. */
void out_result(const char *name, int error, int first);

/* sockets.c: the "sockets" mode's object. */
void probe_sockets(void);
/* listener.c: members "own listener" and "keyctl through own listener": a listener of the
 * worker's own, and whether a refused call it answers itself runs (OK). */
void try_own_listener(void);

#endif
