#!/usr/bin/env python3
"""Generates tests/data/policy/labelled.jsonl: synthetic Japanese and English snippets with the
personal data the policy detector must find (type + byte span), and near-misses it must not.

The committed .jsonl is the test set; this script documents how it was made (fixed seed, so a
re-run reproduces it byte for byte). Every identifier is synthetic: check digits are computed
here, names and addresses are common words, no real person's data."""
import json
import random
import sys

R = random.Random(20261123)

# ---------------------------------------------------------------- validators / generators

def my_number_cd(d11):
    s = 0
    for n in range(1, 12):
        p = int(d11[11 - n])
        q = n + 1 if n <= 6 else n - 5
        s += p * q
    r = s % 11
    return '0' if r <= 1 else str(11 - r)

def my_number(valid=True):
    d = ''.join(R.choice('0123456789') for _ in range(11))
    cd = my_number_cd(d)
    if not valid:
        cd = str((int(cd) + R.randint(1, 9)) % 10)
    return d + cd

def corp_number(valid=True):
    d = ''.join(R.choice('0123456789') for _ in range(12))
    s = sum(int(d[12 - n]) * (1 if n % 2 else 2) for n in range(1, 13))
    cd = 9 - s % 9
    if not valid:
        cd = (cd + R.randint(1, 8)) % 10
        if cd == 9 - s % 9:
            cd = (cd + 1) % 10
    return str(cd) + d

def luhn_ok(d):
    s = 0
    for i, ch in enumerate(reversed(d)):
        v = int(ch)
        if i % 2:
            v *= 2
            if v > 9:
                v -= 9
        s += v
    return s % 10 == 0

def luhn_complete(prefix, length):
    body = prefix + ''.join(R.choice('0123456789') for _ in range(length - len(prefix) - 1))
    for c in '0123456789':
        if luhn_ok(body + c):
            return body + c

def card(valid=True):
    kind = R.choice(['visa', 'mc', 'amex', 'jcb', 'diners', 'mc2'])
    prefix, length = {'visa': ('4', 16), 'mc': (str(R.randint(51, 55)), 16),
                      'mc2': (str(R.randint(2221, 2720)), 16), 'amex': (R.choice(['34', '37']), 15),
                      'jcb': (str(R.randint(3528, 3589)), 16), 'diners': ('36', 14)}[kind]
    n = luhn_complete(prefix, length)
    if not valid:
        n = n[:-1] + str((int(n[-1]) + R.randint(1, 9)) % 10)
    return n

def fmt_card(n, style):
    if style == 'plain':
        return n
    sep = ' ' if style == 'space' else '-'
    if len(n) == 15:
        return sep.join([n[:4], n[4:10], n[10:]])
    if len(n) == 14:
        return sep.join([n[:4], n[4:10], n[10:]])
    return sep.join(n[i:i + 4] for i in range(0, len(n), 4))

def digits(k):
    return ''.join(R.choice('0123456789') for _ in range(k))

def phone():
    kind = R.choice(['tokyo', 'osaka', 'yokohama', 'mobile', 'mobile', 'free', 'ip', 'sapporo'])
    if kind == 'tokyo':
        g = ['03', digits(4), digits(4)]
    elif kind == 'osaka':
        g = ['06', digits(4), digits(4)]
    elif kind == 'yokohama':
        g = ['045', digits(3), digits(4)]
    elif kind == 'sapporo':
        g = ['011', digits(3), digits(4)]
    elif kind == 'mobile':
        g = [R.choice(['090', '080', '070']), digits(4), digits(4)]
    elif kind == 'free':
        g = ['0120', digits(3), digits(3)]
    else:
        g = ['050', digits(4), digits(4)]
    style = R.choice(['hyphen', 'hyphen', 'plain', 'intl', 'paren', 'space'])
    if kind == 'free' and style == 'intl':
        style = 'hyphen'
    if style == 'hyphen':
        return '-'.join(g)
    if style == 'plain':
        return ''.join(g)
    if style == 'space':
        return ' '.join(g)
    if style == 'paren':
        return '(' + g[0] + ')' + g[1] + '-' + g[2]
    return '+81-' + g[0][1:] + '-' + g[1] + '-' + g[2]

def fullwidth(s):
    out = []
    for ch in s:
        if '0' <= ch <= '9' or 'A' <= ch <= 'Z' or 'a' <= ch <= 'z':
            out.append(chr(ord(ch) - 0x21 + 0xFF01))
        elif ch == '-':
            out.append('－')
        else:
            out.append(ch)
    return ''.join(out)

SURNAMES = ['田中', '佐藤', '鈴木', '高橋', '伊藤', '渡辺', '山本', '中村', '小林', '加藤', '吉田',
            '山田', '佐々木', '松本', '井上', '木村', '林', '清水', '山崎', '森']
GIVEN = ['太郎', '花子', '一郎', '健太', '美咲', '翔太', '陽子', '直樹', '由美', '大輔', '恵子',
         '誠', '明美', '浩二', '裕子']
EN_FIRST = ['John', 'Mary', 'Robert', 'Linda', 'James', 'Susan', 'David', 'Karen', 'Emily',
            'Michael', 'Sarah', 'Thomas']
EN_LAST = ['Smith', 'Johnson', 'Brown', 'Taylor', 'Miller', 'Wilson', 'Moore', 'Anderson',
           'Clark', 'Walker', 'Harris', 'Lewis']
PREFS = [('東京都', ['港区', '千代田区', '新宿区', '渋谷区', '世田谷区']),
         ('大阪府', ['大阪市北区', '堺市', '豊中市']), ('神奈川県', ['横浜市中区', '川崎市', '藤沢市']),
         ('愛知県', ['名古屋市中区', '豊田市']), ('福岡県', ['福岡市博多区', '北九州市']),
         ('北海道', ['札幌市中央区', '函館市']), ('京都府', ['京都市左京区', '宇治市']),
         ('埼玉県', ['さいたま市浦和区', '川越市']), ('兵庫県', ['神戸市中央区', '姫路市'])]
TOWNS = ['芝公園', '丸の内', '本町', '栄', '中央', '緑町', '桜木町', '若葉台', '大手町']
STREETS = ['Main', 'Oak', 'Maple', 'Pine', 'Cedar', 'Elm', 'Park', 'Washington', 'Lake', 'Hill']
SUFFIX = ['Street', 'St.', 'Avenue', 'Ave.', 'Road', 'Rd.', 'Boulevard', 'Lane', 'Drive', 'Way']
CITIES = [('Springfield', 'IL'), ('Portland', 'OR'), ('Austin', 'TX'), ('Boston', 'MA'),
          ('Denver', 'CO'), ('Seattle', 'WA')]

def jp_person():
    return R.choice(SURNAMES) + R.choice(GIVEN)

def jp_address():
    pref, cities = R.choice(PREFS)
    city = R.choice(cities)
    town = R.choice(TOWNS)
    style = R.choice(['dash', 'chome', 'chome2'])
    if style == 'dash':
        num = f'{R.randint(1, 9)}-{R.randint(1, 30)}-{R.randint(1, 20)}'
    elif style == 'chome':
        num = f'{R.randint(1, 9)}丁目{R.randint(1, 30)}番{R.randint(1, 20)}号'
    else:
        num = f'{R.randint(1, 9)}丁目{R.randint(1, 30)}-{R.randint(1, 20)}'
    return pref + city + town + num

def en_address(with_city):
    s = f'{R.randint(1, 9999)} {R.choice(STREETS)} {R.choice(SUFFIX)}'
    if with_city:
        c, st = R.choice(CITIES)
        s += f', {c}, {st} {R.randint(10000, 99999)}'
    return s

def email():
    user = R.choice(['taro', 'hanako', 'j.smith', 'mary_k', 'info.sales', 'k-tanaka', 'user+tag'])
    dom = R.choice(['example.co.jp', 'example.com', 'mail.example.org', 'corp.example.jp'])
    return user + '@' + dom

def ipv4():
    return '.'.join(str(R.randint(1, 254)) for _ in range(4))

def ipv6():
    c = R.choice(['full', 'short', 'loop'])
    if c == 'full':
        return ':'.join(format(R.randint(0, 0xffff), 'x') for _ in range(8))
    if c == 'short':
        return '2001:db8::' + format(R.randint(1, 0xffff), 'x')
    return 'fe80::' + format(R.randint(1, 0xffff), 'x') + ':' + format(R.randint(1, 0xffff), 'x')

def insurer_number(valid=True, six=False):
    base = (R.choice(['06', '01', '31', '32', '39']) + digits(5)) if not six else digits(5)
    for c in '0123456789':
        if luhn_ok(base + c) == valid:
            return base + c

def era_date():
    era, mx = R.choice([('昭和', 64), ('平成', 31), ('大正', 15)])
    y = R.randint(1, mx)
    return f'{era}{y}年{R.randint(1, 12)}月{R.randint(1, 28)}日'

def western_date(style):
    y, m, d = R.randint(1940, 2010), R.randint(1, 12), R.randint(1, 28)
    months = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August',
              'September', 'October', 'November', 'December']
    if style == 'kanji':
        return f'{y}年{m}月{d}日'
    if style == 'iso':
        return f'{y}-{m:02d}-{d:02d}'
    if style == 'slash':
        return f'{y}/{m:02d}/{d:02d}'
    if style == 'us':
        return f'{m:02d}/{d:02d}/{y}'
    if style == 'en':
        return f'{months[m - 1]} {d}, {y}'
    return f'{d} {months[m - 1]} {y}'

# ---------------------------------------------------------------- records

records = []

def add(*parts):
    """parts: strings or (type, value) pairs; spans are UTF-8 byte offsets."""
    text, found, pos = [], [], 0
    for p in parts:
        if isinstance(p, tuple):
            t, v = p
            b = len(v.encode())
            found.append({'type': t, 'start': pos, 'end': pos + b})
            text.append(v)
            pos += b
        else:
            text.append(p)
            pos += len(p.encode())
    records.append({'text': ''.join(text), 'findings': found})

T = lambda t, v: (t, v)

# my_number
for i in range(18):
    n = my_number()
    style = i % 4
    v = n if style == 0 else (f'{n[:4]} {n[4:8]} {n[8:]}' if style == 1 else
                              (f'{n[:4]}-{n[4:8]}-{n[8:]}' if style == 2 else fullwidth(n)))
    tmpl = R.choice([('私のマイナンバーは', 'です。'), ('個人番号：', ''), ('My Number: ', ' (keep private)'),
                     ('マイナンバー ', ' を記入してください'), ('', '')])
    add(tmpl[0], T('my_number', v), tmpl[1])
for i in range(10):  # near-miss: wrong check digit
    add(R.choice(['マイナンバー：', '個人番号は', 'My Number ']), my_number(False), R.choice(['', 'です']))
for i in range(4):  # near-miss: 12-digit order numbers
    add(R.choice(['注文番号 ', 'Order number ', '伝票番号：']), my_number(True))

# corporate_number
for i in range(14):
    add(R.choice(['法人番号：', '法人番号 ', 'Corporate Number: ', '当社の法人番号は']),
        T('corporate_number', corp_number()), R.choice(['', 'です。', '.']))
for i in range(8):
    add(R.choice(['法人番号：', '法人番号 ']), corp_number(False), R.choice(['', 'です。']))

# credit_card
for i in range(20):
    n = card()
    v = fmt_card(n, R.choice(['plain', 'space', 'dash']))
    if i % 7 == 3:
        v = fullwidth(v)
    add(R.choice(['カード番号 ', 'クレジットカード：', 'Card number: ', 'お支払いは ', 'charged to card ']),
        T('credit_card', v), R.choice(['', ' でお願いします。', ', exp 12/28.', 'で決済']))
for i in range(10):  # Luhn failures
    add(R.choice(['カード番号 ', 'Card: ']), fmt_card(card(False), R.choice(['plain', 'space'])))
for i in range(4):  # Luhn-valid but unknown prefix
    add('管理コード ', luhn_complete('99', 16))

# phone
for i in range(30):
    v = phone()
    if i % 9 == 4:
        v = fullwidth(v)
    add(R.choice(['電話番号：', 'TEL ', 'お問い合わせは', 'Call me at ', '携帯 ', '連絡先 ', '']),
        T('phone', v), R.choice(['', 'まで', ' までご連絡ください。', ' (weekdays).', 'です']))
for i in range(14):  # near-misses
    kind = i % 7
    if kind == 0:
        add('注文番号 ', '03' + digits(8))
    elif kind == 1:
        add('Order #', '090' + digits(8), ' has shipped.')
    elif kind == 2:
        add('シリアル番号 ', '090-' + digits(4) + '-' + digits(4))
    elif kind == 3:
        add('品番 ORD-03', digits(8), ' を確認')
    elif kind == 4:
        add('電話 03-', digits(4), '-', digits(3), ' (桁が足りない)')
    elif kind == 5:
        add('Tracking number ', '0' + digits(10))
    else:
        add('伝票番号：', '080' + digits(8))

# email
for i in range(18):
    add(R.choice(['メール：', 'E-mail: ', 'ご連絡は', 'Send it to ', '']), T('email', email()),
        R.choice(['', ' までお願いします。', '.', ' 宛']))
for i in range(6):
    add(R.choice(['Twitter は @taro_yamada です', 'user@localhost は無効', 'a@b は不完全', '@mention only',
                  'foo@bar_baz', 'email me at name(at)example.com']))

# ip_address
for i in range(16):
    v = ipv4() if i % 3 else ipv6()
    add(R.choice(['サーバーのIPは', 'Server IP: ', 'アクセス元 ', 'from ', '接続先 ']), T('ip_address', v),
        R.choice(['', ' です。', ' was blocked.', ' からのアクセス']))
for i in range(8):
    add(R.choice(['version 1.2.3.4', 'バージョン 10.0.2.15 を適用', '999.1.1.1 は無効', '時刻 12:30:45 に開始',
                  '1.2.3 リリース', 'std::vector を使う', '256.256.256.256', 'ratio 3.14.15.92.65']))

# bank_account
for i in range(16):
    k = i % 4
    if k == 0:
        add('口座番号 ', T('bank_account', digits(7)))
    elif k == 1:
        add('みずほ銀行 渋谷支店 普通 ', T('bank_account', digits(7)))
    elif k == 2:
        add('振込先：当座 ', T('bank_account', digits(7)), ' (名義 カ）サンプル)')
    else:
        add('Account number ', T('bank_account', digits(8)), ' at the bank.')
for i in range(6):
    add(R.choice(['会員番号 ', '受付番号 ', '整理番号 ']), digits(7))

# passport
for i in range(12):
    v = R.choice(['TK', 'TR', 'MZ', 'TZ']) + digits(7)
    add(R.choice(['旅券番号：', 'パスポート番号 ', 'Passport No. ', 'passport ']), T('passport', v))
for i in range(6):
    add(R.choice(['型番 ', '品番 ', 'Model ']), R.choice(['AB', 'XZ']) + digits(7))

# drivers_license
for i in range(12):
    n = digits(12)
    v = n if i % 2 else f'{n[:4]}-{n[4:8]}-{n[8:]}'
    add(R.choice(['運転免許証番号 ', '免許証番号：', "Driver's license: "]), T('drivers_license', v))

# birth_date
for i in range(20):
    k = i % 5
    if k == 0:
        add('生年月日：', T('birth_date', era_date()))
    elif k == 1:
        add('生年月日 ', T('birth_date', western_date(R.choice(['kanji', 'iso', 'slash']))))
    elif k == 2:
        add(T('birth_date', western_date('kanji')), '生まれです。')
    elif k == 3:
        add('DOB: ', T('birth_date', western_date(R.choice(['iso', 'us', 'en', 'dmy']))))
    else:
        add('Date of birth ', T('birth_date', western_date(R.choice(['en', 'dmy']))), '.')
for i in range(12):  # dates that are not birth dates
    add(R.choice(['納期は', '会議日：', 'The meeting is on ', '契約日 ', 'Invoice date ', '更新日 ']),
        R.choice([western_date('kanji'), western_date('en'), western_date('iso'), era_date()]))

# health_insurance
for i in range(12):
    if i % 3 == 2:
        s1, s2 = digits(4), digits(R.randint(3, 6))
        add('保険証 記号 ', T('health_insurance', s1), ' 番号 ', T('health_insurance', s2))
    else:
        add(R.choice(['保険者番号：', '保険者番号 ']), T('health_insurance', insurer_number(True, six=(i % 3 == 1))))
for i in range(6):
    add('保険者番号：', insurer_number(False))

# postal_code
for i in range(14):
    v = f'{digits(3)}-{digits(4)}'
    k = i % 3
    if k == 0:
        add('〒', T('postal_code', v))
    elif k == 1:
        add('郵便番号 ', T('postal_code', v))
    else:
        pref = R.choice(PREFS)[0]
        add('送付先 ', T('postal_code', v), ' ', pref, 'の支社')
for i in range(6):
    add(R.choice(['部品番号 ', '型番 ', 'Part ']), f'{digits(3)}-{digits(4)}')

# person
for i in range(20):
    name = jp_person()
    hon = R.choice(['様', 'さん', '氏', '先生', '殿'])
    add(R.choice(['担当の', 'こんにちは、', '', '本日は', '']), T('person', name), hon,
        R.choice(['にご連絡しました。', 'がいらっしゃいます。', 'へ', 'の件です。']))
for i in range(8):
    add('氏名：', T('person', R.choice(SURNAMES) + ' ' + R.choice(GIVEN)))
for i in range(14):
    title = R.choice(['Mr.', 'Ms.', 'Mrs.', 'Dr.'])
    name = R.choice(EN_FIRST) + ' ' + R.choice(EN_LAST) if i % 2 else R.choice(EN_LAST)
    add(R.choice(['Please contact ', 'Meeting with ', 'Dear ', '']), title, ' ', T('person', name),
        R.choice([' tomorrow.', ', thank you.', ' about the loan.', '.']))
for i in range(10):  # honorific words that are not names
    add(R.choice(['お客様各位', '皆様のご協力に感謝します', 'お客様へのお知らせ', '神様に祈る', '患者さんの満足度',
                  '先生方へ', 'Dear Sir or Madam', 'The Mr. Coffee machine', 'お子さん向けの講座',
                  '担当者様へ']))

# address
for i in range(16):
    add(R.choice(['住所：', '所在地 ', '', '本社は']), T('address', jp_address()),
        R.choice(['', 'にあります。', 'です。', ' 3階']))
for i in range(12):
    add(R.choice(['Ship to ', 'Address: ', 'We moved to ', '']), T('address', en_address(i % 2 == 0)),
        R.choice(['.', ' last year.', '']))
for i in range(8):
    add(R.choice(['東京都港区に本社があります', '大阪府の天気は晴れ', '神奈川県横浜市で開催', 'Main Street is busy',
                  'We walked 5 blocks', '北海道の魅力', 'Page 12 of the report', '京都府内の観光地']))

# mixed records
for i in range(30):
    name = jp_person()
    ph = phone()
    em = email()
    if i % 3 == 0:
        add(T('person', name), '様（', T('phone', ph), '）からメール ', T('email', em), ' が届きました。')
    elif i % 3 == 1:
        mn = my_number()
        add('申込者 ', T('person', name), '、マイナンバー ', T('my_number', mn), '、住所 ',
            T('address', jp_address()), '。')
    else:
        add('Customer: ', T('person', R.choice(EN_FIRST) + ' ' + R.choice(EN_LAST)), ', card ',
            T('credit_card', fmt_card(card(), 'space')), ', IP ', T('ip_address', ipv4()), '.')

# plain text without personal data
PLAIN = ['本日の会議は午後3時から始まります。', '新製品の売上は前年比120%でした。', 'The quarterly report is attached.',
         '価格は1,234,567円です。', '第3四半期の目標は達成されました。', 'Please review the draft by Friday.',
         'サーバーの負荷は平常です。', 'The build finished in 42 seconds.', '在庫は残り12345個です。',
         '2024年の計画を共有します。', 'Chapter 3, section 2.1 explains the method.',
         '明日は晴れの予報です。', 'Temperature: 23.5 degrees', '参加者は全部で150名でした。',
         'ISBN 978-4-06-123456-7 の書籍', 'We shipped 3,000 units in Q2.', 'ポイントは100ポイント付与されます。',
         'エラーコード E-0312345678 を参照', 'Use port 8080 for the dev server.', '会議室は3階の301です。']
for p in PLAIN:
    add(p)

with open(sys.argv[1] if len(sys.argv) > 1 else 'labelled.jsonl', 'w', encoding='utf-8') as f:
    for r in records:
        f.write(json.dumps(r, ensure_ascii=False) + '\n')
print(len(records), 'records', file=sys.stderr)
