#ifndef SINEWD_PROM_VIEWS_H
#define SINEWD_PROM_VIEWS_H

#include <stddef.h>

#include "sinew/control.h"

/* sinewd --prometheus URL (prom_views.c): api's live views answer from
 * that Prometheus. 0, or -1 with why. */
int sinewd_prom_views(struct sn_api *api, const char *url, char *err, size_t size);

#endif
