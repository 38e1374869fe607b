"""A HIS-style SOAP caller written with Python's zeep, for test/integration/soap-door.test.ts.

Usage: /usr/bin/python3 zeep-client.py WSDL_URL

zeep reads the WSDL once and binds the service HospitalWS on both ports (HospitalWSSoap: SOAP 1.1,
HospitalWSSoap12: SOAP 1.2). The first line written is {"ready": true, "operations": {port: [names]}} (or
{"ready": false, "error": ...} when zeep is missing). Then each line read is one call,
{"port": ..., "op": ..., "xml": ...}, answered by one line: {"answer": string} or
{"fault": {"code": ..., "message": ...}} or {"error": ...}.
"""
import json
import sys


def main():
    try:
        from zeep import Client
        from zeep.exceptions import Fault
    except ImportError as e:  # python3-zeep is not installed
        print(json.dumps({"ready": False, "error": str(e)}), flush=True)
        return
    try:
        client = Client(sys.argv[1])
        ports = {p: client.bind("HospitalWS", p) for p in ("HospitalWSSoap", "HospitalWSSoap12")}
        operations = {p: sorted(s._binding._operations.keys()) for p, s in ports.items()}
    except Exception as e:
        print(json.dumps({"ready": False, "error": repr(e)}), flush=True)
        return
    print(json.dumps({"ready": True, "operations": operations}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            answer = getattr(ports[req["port"]], req["op"])(xml=req["xml"])
            out = {"answer": answer}
        except Fault as f:
            out = {"fault": {"code": str(f.code), "message": f.message}}
        except Exception as e:
            out = {"error": repr(e)}
        print(json.dumps(out, ensure_ascii=False), flush=True)


main()
