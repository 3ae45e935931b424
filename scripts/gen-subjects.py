#!/usr/bin/env python3
"""Writes N synthetic subjects (full_name, email, whatsapp, nik, birth_date) as CSV or JSON Lines,
all valid for Amanah's normalizers and unique in email, phone and NIK. The same scheme as
`amanah bench`. Usage: gen-subjects.py N FILE.csv|FILE.jsonl [SALT]"""
import csv
import json
import sys

NAMES = ["Budi Santoso", "Siti Rahmawati", "Agus Wijaya", "Dewi Lestari", "Ahmad Hidayat",
         "Rina Kurniawati", "Putu Ayu Saraswati", "Yohanes Simanjuntak"]
PROVINCES = [11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53, 61, 62,
             63, 64, 65, 71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96]
MOBILE = [811, 812, 813, 821, 822, 823, 851, 856, 857]
SPACE = 900_000_000


def subject(salt, i):
    m = (i + salt * 7_000_003) % SPACE
    phone = "+62%d%08d" % (MOBILE[(m // 100_000_000) % len(MOBILE)], m % 100_000_000)
    serial = m % 9999 + 1
    district = (m // 9999) % 99 + 1
    regency = (m // (9999 * 99)) % 99 + 1
    province = PROVINCES[(m // (9999 * 99 * 99)) % len(PROVINCES)]
    # Adults born 1945-2004: the policy refuses people under its minimum age.
    day, month, year = m % 28 + 1, (m // 28) % 12 + 1, 1945 + (m // 336) % 60
    yy = year % 100
    nik_day = day + 40 if m % 2 == 1 else day
    nik = "%02d%02d%02d%02d%02d%02d%04d" % (province, regency, district, nik_day, month, yy, serial)
    return {"full_name": NAMES[m % len(NAMES)], "email": "g%x.%d@import.example.id" % (salt, i),
            "whatsapp": phone, "nik": nik, "birth_date": "%d-%02d-%02d" % (year, month, day)}


def main():
    n, path = int(sys.argv[1]), sys.argv[2]
    salt = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    with open(path, "w", newline="") as f:
        if path.endswith(".csv"):
            w = csv.DictWriter(f, fieldnames=["full_name", "email", "whatsapp", "nik", "birth_date"])
            w.writeheader()
            for i in range(n):
                w.writerow(subject(salt, i))
        else:
            for i in range(n):
                f.write(json.dumps(subject(salt, i)) + "\n")


if __name__ == "__main__":
    main()
