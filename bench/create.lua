-- POST /v1/subjects with random unique values (name, email, whatsapp, NIK, birth date).
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local d, m, y = math.random(1, 28), math.random(1, 12), math.random(90, 99)
  local nik = string.format("317409%02d%02d%02d%04d", d, m, y, math.random(1, 9999))
  local body = string.format(
    '{"fields":{"full_name":"Bench Person","email":"b%d.%d@example.id","whatsapp":"0812%08d","nik":"%s","birth_date":"19%02d-%02d-%02d"}}',
    math.random(1, 1e9), math.random(1, 1e9), math.random(0, 99999999), nik, y, m, d)
  return wrk.format(nil, "/v1/subjects?purpose=admission", nil, body)
end
