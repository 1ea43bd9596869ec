"""A small, realistic product, generated deterministically from a seed.

Visitors arrive through UTM sources on a weekly rhythm with steady growth, browse in sessions
(`$session_id`, pageviews over a fixed site map, autocapture clicks with element chains, the odd
`$rageclick`/`$dead_click`), some sign up (an `$identify` that merges the anonymous visitor)
and some buy (`purchase` with revenue). Anonymous events are personless, as posthog-js sends
them by default.
"""

from __future__ import annotations

import math
import random
from itertools import accumulate
import uuid
from datetime import datetime, timedelta
from typing import Iterator

from app.ingestion.events import Event, prepare_person_fields

HOST = "https://shop.example.com"
PAGES = ["/", "/pricing", "/features", "/blog", "/blog/launch", "/docs", "/docs/getting-started", "/signup",
         "/login", "/products", "/products/widget", "/products/gadget", "/cart", "/checkout", "/account"]
PAGE_WEIGHTS = [30, 12, 10, 6, 3, 6, 4, 5, 4, 9, 6, 5, 4, 3, 3]
BROWSERS = [("Chrome", "131.0"), ("Safari", "18.1"), ("Firefox", "133.0"), ("Edge", "131.0")]
BROWSER_WEIGHTS = [64, 19, 9, 8]
OSES = [("Windows", "10", "Desktop"), ("Mac OS X", "14.6", "Desktop"), ("iOS", "18.1", "Mobile"),
        ("Android", "14", "Mobile"), ("Linux", "", "Desktop")]
OS_WEIGHTS = [38, 22, 20, 16, 4]
COUNTRIES = [("US", "United States"), ("GB", "United Kingdom"), ("DE", "Germany"), ("FR", "France"),
             ("IN", "India"), ("BR", "Brazil"), ("CA", "Canada"), ("JP", "Japan")]
COUNTRY_WEIGHTS = [35, 10, 9, 7, 12, 8, 6, 5]
SOURCES = [None, "google", "twitter", "newsletter", "producthunt", "linkedin"]
SOURCE_WEIGHTS = [40, 28, 10, 9, 6, 7]
MEDIUM = {"google": "cpc", "twitter": "social", "newsletter": "email", "producthunt": "referral",
          "linkedin": "social"}
CLICKS = [
    'a.btn.btn-primary:attr__class="btn btn-primary"attr__href="/signup"attr__id="cta"attr_id="cta"'
    'href="/signup"nth-child="1"nth-of-type="1"text="Get started";div.hero:attr__class="hero"nth-child="2"'
    'nth-of-type="1";body:nth-child="2"nth-of-type="1"',
    'button.buy:attr__class="buy"attr__data-attr="buy-button"nth-child="3"nth-of-type="1"text="Buy now";'
    'form.checkout:attr__class="checkout"nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"',
    'a.nav-link:attr__class="nav-link"attr__href="/pricing"href="/pricing"nth-child="2"nth-of-type="2"'
    'text="Pricing";nav.top:attr__class="top"nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"',
    'a.nav-link:attr__class="nav-link"attr__href="/docs"href="/docs"nth-child="3"nth-of-type="3"text="Docs";'
    'nav.top:attr__class="top"nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"',
    'button:attr__type="submit"nth-child="4"nth-of-type="1"text="Subscribe";form.newsletter:attr__class='
    '"newsletter"nth-child="5"nth-of-type="1";body:nth-child="2"nth-of-type="1"',
    'img.logo:attr__class="logo"nth-child="1"nth-of-type="1";a:attr__href="/"href="/"nth-child="1"'
    'nth-of-type="1";body:nth-child="2"nth-of-type="1"',
]
CLICK_WEIGHTS = [25, 15, 20, 15, 10, 15]
PLANS = [("starter", 19.0), ("pro", 49.0), ("team", 199.0)]


# random.choices recomputes cumulative weights on every call unless given them.
_CUM_BROWSER_WEIGHTS = list(accumulate(BROWSER_WEIGHTS))
_CUM_OS_WEIGHTS = list(accumulate(OS_WEIGHTS))
_CUM_COUNTRY_WEIGHTS = list(accumulate(COUNTRY_WEIGHTS))
_CUM_SOURCE_WEIGHTS = list(accumulate(SOURCE_WEIGHTS))
_CUM_PAGE_WEIGHTS = list(accumulate(PAGE_WEIGHTS))
_CUM_CLICK_WEIGHTS = list(accumulate(CLICK_WEIGHTS))
_CUM_PLAN_WEIGHTS = list(accumulate([60, 30, 10]))


class DemoProduct:
    def __init__(self, *, seed: int, days: int, end: datetime) -> None:
        self.rng = random.Random(seed)
        self.days = max(1, days)
        self.end = end
        self.start = end - timedelta(days=self.days)
        self.users = 0
        # Day weights: growth of ~3x over the period, weekends at 60 %.
        self.day_weights = []
        for d in range(self.days):
            day = self.start + timedelta(days=d)
            growth = math.exp(1.1 * d / self.days)
            self.day_weights.append(growth * (0.6 if day.weekday() >= 5 else 1.0))
        self.day_cum = list(accumulate(self.day_weights))

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def events(self, total: int) -> Iterator[Event]:
        produced = 0
        while produced < total:
            for ev in self._visitor():
                yield ev
                produced += 1
                if produced >= total:
                    return

    def _event(self, name: str, did: str, ts: datetime, props: dict, *, chain: str = "") -> Event:
        ev = Event(uuid=self._uuid(), event=name, distinct_id=did, properties=props, timestamp=ts,
                   elements_chain=chain)
        prepare_person_fields(ev)
        return ev

    def _visitor(self) -> Iterator[Event]:
        rng = self.rng
        day = rng.choices(range(self.days), cum_weights=self.day_cum)[0]
        anon = str(self._uuid())
        browser, browser_version = rng.choices(BROWSERS, cum_weights=_CUM_BROWSER_WEIGHTS)[0]
        os_name, os_version, device = rng.choices(OSES, cum_weights=_CUM_OS_WEIGHTS)[0]
        country, country_name = rng.choices(COUNTRIES, cum_weights=_CUM_COUNTRY_WEIGHTS)[0]
        source = rng.choices(SOURCES, cum_weights=_CUM_SOURCE_WEIGHTS)[0]
        base = {"$browser": browser, "$browser_version": browser_version, "$os": os_name,
                "$os_version": os_version, "$device_type": device, "$geoip_country_code": country,
                "$geoip_country_name": country_name, "$lib": "web", "$lib_version": "1.449.2"}
        if source:
            base.update({"utm_source": source, "utm_medium": MEDIUM[source], "utm_campaign": f"{source}-q4"})
        identified: str | None = None
        converts = rng.random() < 0.22
        sessions = 1 + min(int(rng.expovariate(0.9)), 6)
        ts = self.start + timedelta(days=day, seconds=rng.uniform(7, 23) * 3600)
        for s in range(sessions):
            if ts >= self.end:
                return
            session_id = str(self._uuid())
            did = identified or anon
            personless = identified is None
            referrer = "$direct" if not source else f"https://{source}.com/"
            for page_no in range(1 + min(int(rng.expovariate(0.35)), 12)):
                path = "/" if page_no == 0 and s == 0 else rng.choices(PAGES, cum_weights=_CUM_PAGE_WEIGHTS)[0]
                props = {**base, "$session_id": session_id, "$current_url": HOST + path, "$pathname": path,
                         "$host": "shop.example.com", "$referrer": referrer}
                if personless:
                    props["$process_person_profile"] = False
                yield self._event("$pageview", did, ts, dict(props))
                ts += timedelta(seconds=rng.uniform(3, 90))
                if rng.random() < 0.55:
                    chain = rng.choices(CLICKS, cum_weights=_CUM_CLICK_WEIGHTS)[0]
                    kind = "$autocapture"
                    roll = rng.random()
                    if roll < 0.04:
                        kind = "$rageclick"
                    elif roll < 0.07:
                        kind = "$dead_click"
                    yield self._event(kind, did, ts, {**props, "$event_type": "click"}, chain=chain)
                    ts += timedelta(seconds=rng.uniform(1, 30))
                if converts and identified is None and (path == "/signup" or page_no >= 3) and ts < self.end:
                    self.users += 1
                    identified = f"user-{self.users}@example.com"
                    identify_props = {**props, "$anon_distinct_id": anon,
                                      "$set": {"email": identified, "plan": "free"},
                                      "$set_once": {"signup_source": source or "direct"}}
                    identify_props.pop("$process_person_profile", None)
                    yield self._event("$identify", identified, ts, identify_props)
                    signup_props = {k: v for k, v in props.items() if k != "$process_person_profile"}
                    yield self._event("signed_up", identified, ts + timedelta(seconds=1), signup_props)
                    did, personless = identified, False
                    base = dict(base)
                if identified and rng.random() < 0.06 and ts < self.end:
                    plan, price = rng.choices(PLANS, cum_weights=_CUM_PLAN_WEIGHTS)[0]
                    yield self._event("purchase", identified, ts, {
                        **base, "$session_id": session_id, "$current_url": HOST + "/checkout",
                        "plan": plan, "revenue": price, "currency": "USD",
                        "$set": {"plan": plan}})
                if ts >= self.end:
                    return
            ts += timedelta(hours=rng.uniform(2, 24 * 6))
