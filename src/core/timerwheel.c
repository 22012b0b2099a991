/* Hierarchical timer wheel: SN_WHEEL_LEVELS levels of 64 slots, 1 ms ticks,
 * covering 64^4 ms (about 4.6 hours); later expiries are clamped to the
 * horizon and re-linked when they cascade down. Linking and unlinking are
 * O(1); each tick costs one slot and, on wrap-around, one cascade. The
 * layout follows the classic kernel wheel; h2o's lib/common/timerwheel.c
 * is the model for the API. */
#include "sinew/loop.h"

static void slot_push(struct sn_timer **slot, struct sn_timer *t)
{
	t->next = *slot;
	if (t->next != NULL)
		t->next->pprev = &t->next;
	*slot = t;
	t->pprev = slot;
}

/* earliest: the first tick the timer may land on (now + 1 when linking,
 * now when cascading, since slot now is processed right after). */
static void place(struct sn_timerwheel *w, struct sn_timer *t, uint64_t earliest)
{
	uint64_t e = t->expire_at;
	uint64_t diff;
	int level;

	if (e < earliest)
		e = earliest;
	diff = e - w->now;
	for (level = 0; level < SN_WHEEL_LEVELS - 1; level++)
		if (diff < (1ull << (SN_WHEEL_BITS * (level + 1))))
			break;
	if (level == SN_WHEEL_LEVELS - 1) {
		uint64_t horizon = (1ull << (SN_WHEEL_BITS * SN_WHEEL_LEVELS)) - 1;
		if (diff > horizon)
			e = w->now + horizon;
	}
	slot_push(&w->slots[level][(e >> (SN_WHEEL_BITS * level)) & (SN_WHEEL_SLOTS - 1)], t);
}

void sn_timerwheel_init(struct sn_timerwheel *w, uint64_t now)
{
	memset(w, 0, sizeof(*w));
	w->now = now;
}

void sn_timerwheel_link(struct sn_timerwheel *w, struct sn_timer *t, uint64_t expire_at)
{
	if (t->pprev != NULL)
		sn_timerwheel_unlink(w, t);
	t->expire_at = expire_at;
	place(w, t, w->now + 1);
	w->count++;
}

void sn_timerwheel_unlink(struct sn_timerwheel *w, struct sn_timer *t)
{
	if (t->pprev == NULL)
		return;
	*t->pprev = t->next;
	if (t->next != NULL)
		t->next->pprev = t->pprev;
	t->next = NULL;
	t->pprev = NULL;
	w->count--;
}

int64_t sn_timerwheel_next_in(const struct sn_timerwheel *w)
{
	if (w->count == 0)
		return -1;
	for (uint64_t d = 1; d <= SN_WHEEL_SLOTS; d++) {
		uint64_t tick = w->now + d;
		if (w->slots[0][tick & (SN_WHEEL_SLOTS - 1)] != NULL)
			return (int64_t)d;
		/* Stop at the next cascade: timers above level 0 come down there. */
		if ((tick & (SN_WHEEL_SLOTS - 1)) == 0)
			return (int64_t)d;
	}
	return SN_WHEEL_SLOTS;
}

static void cascade(struct sn_timerwheel *w, int level)
{
	size_t idx = (w->now >> (SN_WHEEL_BITS * level)) & (SN_WHEEL_SLOTS - 1);
	struct sn_timer *t = w->slots[level][idx];
	w->slots[level][idx] = NULL;
	while (t != NULL) {
		struct sn_timer *next = t->next;
		t->next = NULL;
		t->pprev = NULL;
		place(w, t, w->now);
		t = next;
	}
}

void sn_timerwheel_advance(struct sn_timerwheel *w, uint64_t now, struct sn_timer **expired)
{
	struct sn_timer **tail = expired;
	size_t due = 0;

	while (*tail != NULL)
		tail = &(*tail)->next;
	if (w->count == 0) {
		if (now > w->now)
			w->now = now;
		return;
	}
	while (w->now < now) {
		w->now++;
		/* Cascade from the highest level whose slot boundary we crossed. */
		for (int level = SN_WHEEL_LEVELS - 1; level >= 1; level--) {
			uint64_t mask = (1ull << (SN_WHEEL_BITS * level)) - 1;
			if ((w->now & mask) == 0)
				cascade(w, level);
		}
		struct sn_timer **slot = &w->slots[0][w->now & (SN_WHEEL_SLOTS - 1)];
		while (*slot != NULL) {
			struct sn_timer *t = *slot;
			*slot = t->next;
			if (t->next != NULL)
				t->next->pprev = slot;
			t->next = NULL;
			t->pprev = NULL;
			if (t->expire_at > w->now) {
				/* Clamped to the horizon when linked: not due yet. */
				place(w, t, w->now + 1);
				continue;
			}
			/* Still counted and still unlinkable: it now lives in
			 * *expired until the caller pops it. */
			t->pprev = tail;
			*tail = t;
			tail = &t->next;
			due++;
		}
		if (w->count == due) {
			w->now = now;
			break;
		}
	}
}
