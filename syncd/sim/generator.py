"""Deterministic tenant generator (seeded) with realistic Graph shapes.

Shapes follow the recordings (users-list.json: explicit nulls, `businessPhones: []`, guest UPNs
`x_domain#EXT#@tenant`), plus guests, disabled users, nested groups and non-user members
(devices, orgContacts, servicePrincipals). Intune objects come from `syncd.sim.intune` when present.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from typing import Any

from syncd.sim.intune import generate_intune
from syncd.sim.tenant import Tenant, ensure_app

_FIRST = (
    "Adam",
    "Bea",
    "Carlos",
    "Dana",
    "Erkang",
    "Fatima",
    "Gustav",
    "Hana",
    "Ivan",
    "Jia",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tomoko",
    "Uma",
    "Victor",
    "Wen",
    "Yusuf",
)
_LAST = (
    "Williams",
    "Zheng",
    "Knoedel",
    "Garcia",
    "Okafor",
    "Nakamura",
    "Schmidt",
    "Rossi",
    "Dubois",
    "Khan",
    "Silva",
    "Novak",
    "Larsen",
    "Kowalski",
    "Haddad",
    "Moreau",
    "Ivanova",
    "Tanaka",
    "Mensah",
    "Ortiz",
)
_DEPTS = ("Engineering", "Sales", "Marketing", "Finance", "HR", "Legal", "Support", "Operations", None)
_TITLES = ("Engineer", "Manager", "Analyst", "Director", "Consultant", "Designer", "Specialist", None)
_CITIES = (
    ("Seattle", "US", "en-US"),
    ("Berlin", "DE", "de-DE"),
    ("Paris", "FR", "fr-FR"),
    ("Tokyo", "JP", "ja-JP"),
    ("London", "GB", "en-GB"),
    ("Toronto", "CA", "en-CA"),
)
_GUEST_DOMAINS = ("gmail.com", "outlook.com", "partner.example", "contoso.com", "fabrikam.com")
_OS = (
    ("Windows", "10.0.19045.4046", 0.5),
    ("iOS", "17.4", 0.2),
    ("Android", "14.0", 0.15),
    ("MacMDM", "14.3.1", 0.1),
    ("Linux", "6.5", 0.05),
)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _stamp(rng: random.Random, start_year: int = 2019) -> str:
    y = rng.randint(start_year, 2024)
    return (
        f"{y}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
        f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
    )


def _user(rng: random.Random, i: int, domain: str, guest: bool, disabled: bool) -> dict[str, Any]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    nick = f"{first.lower()}.{last.lower()}{i}"
    city, country, lang = rng.choice(_CITIES)
    created = _stamp(rng)
    if guest:
        ext_domain = rng.choice(_GUEST_DOMAINS)
        mail = f"{nick}@{ext_domain}"
        upn = f"{nick}_{ext_domain}#EXT#@{domain}"
        sparse = rng.random() < 0.5
        return {
            "id": _uuid(rng),
            "businessPhones": [],
            "displayName": f"{first} {last}" if not sparse else nick,
            "givenName": None if sparse else first,
            "jobTitle": None,
            "mail": mail,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "surname": None if sparse else last,
            "userPrincipalName": upn,
            "accountEnabled": not disabled,
            "userType": "Guest",
            "createdDateTime": created,
            "creationType": "Invitation",
            "externalUserState": rng.choice(("Accepted", "Accepted", "PendingAcceptance")),
            "externalUserStateChangeDateTime": created,
            "department": None,
            "companyName": None,
            "usageLocation": None,
            "employeeId": None,
            "city": None,
            "country": None,
            "mailNickname": nick,
            "otherMails": [mail],
            "proxyAddresses": [],
            "onPremisesSyncEnabled": None,
            "onPremisesImmutableId": None,
            "deletedDateTime": None,
            "identities": [{"signInType": "userPrincipalName", "issuer": domain, "issuerAssignedId": upn}],
        }
    synced = rng.random() < 0.3
    return {
        "id": _uuid(rng),
        "businessPhones": [f"+1 425 555 {rng.randint(0, 9999):04d}"] if rng.random() < 0.6 else [],
        "displayName": f"{first} {last}",
        "givenName": first,
        "jobTitle": rng.choice(_TITLES),
        "mail": f"{nick}@{domain}",
        "mobilePhone": f"+1 206 555 {rng.randint(0, 9999):04d}" if rng.random() < 0.3 else None,
        "officeLocation": f"{rng.randint(1, 40)}/{rng.randint(1000, 3999)}" if rng.random() < 0.4 else None,
        "preferredLanguage": lang if rng.random() < 0.7 else None,
        "surname": last,
        "userPrincipalName": f"{nick}@{domain}",
        "accountEnabled": not disabled,
        "userType": "Member",
        "createdDateTime": created,
        "creationType": None,
        "externalUserState": None,
        "externalUserStateChangeDateTime": None,
        "department": rng.choice(_DEPTS),
        "companyName": "Simulated Inc.",
        "usageLocation": country,
        "employeeId": f"E{100000 + i}" if rng.random() < 0.8 else None,
        "city": city,
        "country": country,
        "mailNickname": nick,
        "otherMails": [],
        "proxyAddresses": [f"SMTP:{nick}@{domain}"],
        "onPremisesSyncEnabled": True if synced else None,
        "onPremisesImmutableId": _uuid(rng)[:22] if synced else None,
        "deletedDateTime": None,
        "identities": [
            {"signInType": "userPrincipalName", "issuer": domain, "issuerAssignedId": f"{nick}@{domain}"}
        ],
    }


def _group(rng: random.Random, i: int, domain: str) -> dict[str, Any]:
    kind = rng.random()
    unified = kind < 0.35
    dynamic = 0.35 <= kind < 0.45
    name = f"{rng.choice(('Team', 'Project', 'Dept', 'Access', 'Role', 'Site'))}-{i:05d}"
    nick = name.lower()
    group_types = ["Unified"] if unified else (["DynamicMembership"] if dynamic else [])
    return {
        "id": _uuid(rng),
        "deletedDateTime": None,
        "classification": None,
        "createdDateTime": _stamp(rng),
        "creationOptions": [],
        "description": f"Simulated group {name}" if rng.random() < 0.7 else None,
        "displayName": name,
        "expirationDateTime": None,
        "groupTypes": group_types,
        "isAssignableToRole": None,
        "mail": f"{nick}@{domain}" if unified else None,
        "mailEnabled": unified,
        "mailNickname": nick,
        "membershipRule": 'user.department -eq "Sales"' if dynamic else None,
        "membershipRuleProcessingState": "On" if dynamic else None,
        "onPremisesDomainName": None,
        "onPremisesLastSyncDateTime": None,
        "onPremisesSamAccountName": None,
        "onPremisesSecurityIdentifier": None,
        "onPremisesSyncEnabled": None,
        "preferredDataLocation": None,
        "preferredLanguage": None,
        "proxyAddresses": [f"SMTP:{nick}@{domain}"] if unified else [],
        "renewedDateTime": _stamp(rng),
        "resourceBehaviorOptions": [],
        "resourceProvisioningOptions": [],
        "securityEnabled": not unified or rng.random() < 0.3,
        "securityIdentifier": f"S-1-12-1-{rng.getrandbits(31)}",
        "theme": None,
        "visibility": "Private" if unified and rng.random() < 0.5 else ("Public" if unified else None),
        "onPremisesProvisioningErrors": [],
        "serviceProvisioningErrors": [],
    }


def _device(rng: random.Random, i: int) -> dict[str, Any]:
    r = rng.random()
    acc = 0.0
    os_name, os_ver = _OS[0][0], _OS[0][1]
    for name, ver, weight in _OS:
        acc += weight
        if r < acc:
            os_name, os_ver = name, ver
            break
    managed = rng.random() < 0.75
    created = _stamp(rng, 2020)
    return {
        "id": _uuid(rng),
        "deletedDateTime": None,
        "accountEnabled": rng.random() < 0.97,
        "approximateLastSignInDateTime": _stamp(rng, 2023),
        "complianceExpirationDateTime": None,
        "createdDateTime": created,
        "deviceCategory": None,
        "deviceId": _uuid(rng),
        "deviceMetadata": None,
        "deviceOwnership": "Company" if rng.random() < 0.7 else "Personal",
        "deviceVersion": 2,
        "displayName": f"{os_name[:3].upper()}-{i:06d}",
        "enrollmentProfileName": None,
        "enrollmentType": "AzureDomainJoined" if os_name == "Windows" else None,
        "isCompliant": (rng.random() < 0.8) if managed else None,
        "isManaged": managed,
        "isRooted": False,
        "managementType": "MDM" if managed else None,
        "manufacturer": {"Windows": "Dell Inc.", "iOS": "Apple", "MacMDM": "Apple", "Android": "Samsung"}.get(
            os_name
        ),
        "mdmAppId": "0000000a-0000-0000-c000-000000000000" if managed else None,
        "model": {
            "Windows": "Latitude 7440",
            "iOS": "iPhone 15",
            "MacMDM": "MacBookPro18,3",
            "Android": "SM-S918B",
        }.get(os_name),
        "onPremisesLastSyncDateTime": None,
        "onPremisesSyncEnabled": None,
        "operatingSystem": os_name,
        "operatingSystemVersion": os_ver,
        "physicalIds": [],
        "profileType": "RegisteredDevice",
        "registrationDateTime": created,
        "systemLabels": [],
        "trustType": rng.choice(("AzureAd", "Workplace", "ServerAd")),
        "extensionAttributes": {f"extensionAttribute{n}": None for n in range(1, 16)},
        "alternativeSecurityIds": [{"type": 2, "identityProvider": None, "key": "Y3YxAAAA"}],
    }


def _contact(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "id": _uuid(rng),
        "displayName": f"Contact {i}",
        "mail": f"contact{i}@{rng.choice(_GUEST_DOMAINS)}",
        "givenName": None,
        "surname": None,
        "companyName": None,
        "mailNickname": f"contact{i}",
        "proxyAddresses": [],
        "deletedDateTime": None,
    }


def _service_principal(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "id": _uuid(rng),
        "appId": _uuid(rng),
        "displayName": f"Sim App {i}",
        "servicePrincipalType": "Application",
        "accountEnabled": True,
        "deletedDateTime": None,
    }


def _load(t: Tenant, store: str, objs: Iterable[dict[str, Any]]) -> list[str]:
    """Load the objects (made one by one, in order: the seed decides them) and return their ids."""
    ids: list[str] = []
    for obj in objs:
        t.load_object(store, obj)
        ids.append(obj["id"])
    return ids


def generate_tenant(
    *,
    seed: int = 1,
    users: int = 100,
    groups: int = 10,
    devices: int = 20,
    memberships: int | None = None,
    guest_ratio: float = 0.08,
    disabled_ratio: float = 0.05,
    contacts: int | None = None,
    service_principals: int | None = None,
    managed_devices: int | None = None,
    tenant_id: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    with_intune: bool = True,
) -> Tenant:
    """Build a tenant deterministically from `seed` (same arguments → identical tenant)."""
    rng = random.Random(seed)
    tid = tenant_id or _uuid(rng)
    org_name = f"Sim Org {seed}"
    domain = f"simorg{seed}.onmicrosoft.com"
    t = Tenant(
        tid,
        {
            "id": tid,
            "deletedDateTime": None,
            "businessPhones": [],
            "city": None,
            "country": None,
            "countryLetterCode": "US",
            "createdDateTime": "2019-09-04T16:59:36Z",
            "displayName": org_name,
            "isMultipleDataLocationsForServicesEnabled": None,
            "marketingNotificationEmails": [],
            "onPremisesLastSyncDateTime": None,
            "onPremisesSyncEnabled": None,
            "postalCode": None,
            "preferredLanguage": "en",
            "privacyProfile": None,
            "securityComplianceNotificationMails": [],
            "securityComplianceNotificationPhones": [],
            "state": None,
            "street": None,
            "technicalNotificationMails": [f"admin@{domain}"],
            "tenantType": "AAD",
            "directorySizeQuota": {"used": users + groups + devices, "total": 300000},
            "assignedPlans": [
                {
                    "assignedDateTime": "2021-02-15T15:32:43Z",
                    "capabilityStatus": "Enabled",
                    "service": "AADPremiumService",
                    "servicePlanId": "41781fb2-bc02-4b7c-bd55-b576c07bb09d",
                }
            ],
            "provisionedPlans": [],
            "verifiedDomains": [
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": True,
                    "isInitial": True,
                    "name": domain,
                    "type": "Managed",
                }
            ],
        },
    )
    ensure_app(t, client_id or _uuid(rng), client_secret or f"sim~{rng.getrandbits(160):040x}")
    user_ids = _load(
        t,
        "users",
        (
            _user(rng, i, domain, rng.random() < guest_ratio, rng.random() < disabled_ratio)
            for i in range(users)
        ),
    )
    device_ids = _load(t, "devices", (_device(rng, i) for i in range(devices)))
    n_contacts = contacts if contacts is not None else max(1, users // 200)
    contact_ids = _load(t, "contacts", (_contact(rng, i) for i in range(n_contacts)))
    n_sps = service_principals if service_principals is not None else max(1, users // 500)
    sp_ids = _load(t, "servicePrincipals", (_service_principal(rng, i) for i in range(n_sps)))
    group_ids = _load(t, "groups", (_group(rng, i, domain) for i in range(groups)))
    _memberships(
        rng,
        t,
        group_ids,
        user_ids,
        device_ids,
        contact_ids,
        sp_ids,
        memberships if memberships is not None else users * 5,
    )
    if with_intune:
        managed = (
            managed_devices
            if managed_devices is not None
            else sum(1 for d in t.list("devices") if d.get("isManaged"))
        )
        t.intune = generate_intune(rng, t, managed)
    return t


def _memberships(
    rng: random.Random,
    t: Tenant,
    group_ids: list[str],
    user_ids: list[str],
    device_ids: list[str],
    contact_ids: list[str],
    sp_ids: list[str],
    total: int,
) -> None:
    """Skewed group sizes (a few very large groups), ~5 % nested groups, some non-user members."""
    if not group_ids or total <= 0:
        return
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(group_ids))]
    scale = total / sum(weights)
    for gi, gid in enumerate(group_ids):
        size = int(weights[gi] * scale)
        pool_users = min(size, len(user_ids))
        chosen = rng.sample(user_ids, pool_users) if pool_users else []
        members = t.members.setdefault(gid, {})
        for mid in chosen:
            members[mid] = None
        if gi > 0 and (gi % 20 == 1 or rng.random() < 0.04):  # nest: only earlier-indexed groups → no cycles
            for ng in rng.sample(group_ids[:gi], min(gi, rng.randint(1, 3))):
                members[ng] = None
        if device_ids and (gi % 20 == 2 or rng.random() < 0.04):
            for d in rng.sample(device_ids, min(len(device_ids), rng.randint(1, 20))):
                members[d] = None
        if contact_ids and (gi % 50 == 3 or rng.random() < 0.02):
            members[rng.choice(contact_ids)] = None
        if sp_ids and (gi % 50 == 4 or rng.random() < 0.02):
            members[rng.choice(sp_ids)] = None
