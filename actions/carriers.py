"""Carriers the stores ship with: display names and public tracking links per tracking number."""

from __future__ import annotations

from urllib.parse import quote

# Public tracking pages; {n} is the URL-quoted tracking number.
TRACKING_URLS: dict[str, str] = {
    "UPS": "https://www.ups.com/track?tracknum={n}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={n}",
    "FedEx": "https://www.fedex.com/fedextrack/?trknbr={n}",
    "DHL": "https://www.dhl.com/global-en/home/tracking/tracking-express.html?tracking-id={n}",
    "China Post": "https://track.chinapost.com.cn/?trackingNumber={n}",
    "EMS": "https://www.ems.com.cn/qps/yjcx?mailNum={n}",
    "Cainiao": "https://global.cainiao.com/detail.htm?mailNoList={n}",
    "4PX": "https://track.4px.com/#/result/0/{n}",
    "Yanwen": "https://track.yw56.com.cn/en/querydel?nums={n}",
    "YunExpress": "https://www.yuntrack.com/parcelTracking?id={n}",
    "Royal Mail": "https://www.royalmail.com/track-your-item#/tracking-results/{n}",
    "Japan Post": "https://trackings.post.japanpost.jp/services/srv/search/?requestNo1={n}",
}
# Any carrier we do not know: a universal tracker that detects the carrier from the number.
FALLBACK_TRACKING_URL = "https://t.17track.net/en#nums={n}"

_ALIASES = {
    "ups": "UPS",
    "usps": "USPS",
    "fedex": "FedEx",
    "dhl": "DHL",
    "dhl express": "DHL",
    "china post": "China Post",
    "chinapost": "China Post",
    "ems": "EMS",
    "china ems": "EMS",
    "cainiao": "Cainiao",
    "4px": "4PX",
    "yanwen": "Yanwen",
    "yunexpress": "YunExpress",
    "yun express": "YunExpress",
    "royal mail": "Royal Mail",
    "japan post": "Japan Post",
}


def carrier_name(raw: str) -> str:
    """The canonical display name of a carrier as stores spell it in many ways."""
    return _ALIASES.get(raw.strip().lower(), raw.strip())


def tracking_url(carrier: str, number: str) -> str:
    """The public page where the shopper can follow this parcel."""
    template = TRACKING_URLS.get(carrier_name(carrier), FALLBACK_TRACKING_URL)
    return template.format(n=quote(number.strip(), safe=""))


def s10_check_digit(serial: str) -> int:
    """UPU S10 check digit (China Post, Japan Post, Royal Mail international numbers)."""
    weights = (8, 6, 4, 2, 3, 5, 9, 7)
    total = sum(int(d) * w for d, w in zip(serial, weights, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)
